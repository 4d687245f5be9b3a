"""Prescriptions, injections and their administration (OMP-01/02/11/12), and diet orders (OMD)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from hl7wire import components, segment
from synthetic import tables
from synthetic.model import Event
from synthetic.ssmix2.segments import (
    Built,
    Encounter,
    MessageContext,
    control_of,
    msh,
    num,
    orc,
    order_file,
    pid,
    pv1,
    tq1,
    ts,
)
from synthetic.ssmix2.text import esc


# -- orders -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OrderInfo:
    """What the writer remembers of an order: when it was entered (ORC-9) and the order's own event."""

    entered: dt.datetime
    inpatient: bool
    payload: dict[str, Any]


def _drug_lines(event: Event) -> list[list[Any]]:
    lines: list[list[Any]] = event.payload.get("rx", [])
    return lines


def _route(drug: tables.Drug) -> str:
    if drug.kind == "oral":
        return "PO^口^HL70162"
    if "皮下" in drug.usage_text:
        return "SC^皮下^HL70162"
    if drug.kind == "external":
        return "TP^局所^HL70162"
    return "IV^静脈内^HL70162"


def _usage_code(text: str) -> str:
    return "U" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:7].upper()


def _drug_code(drug: tables.Drug) -> str:
    return components(drug.code, esc(drug.name), drug.system)


def _rde(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo, data_type: str) -> Built:
    drugs = tables.drugs()
    segs = [msh(ctx, event, "RDE^O11^RDE_O11"), pid(ctx, event), pv1(ctx, event, enc)]
    for rp, (key, dose, unit, times, days, usage) in enumerate(_drug_lines(event), start=1):
        drug = drugs[key]
        units = components(drug.unit_code, esc(unit), "MR9P")
        segs.append(
            orc(ctx, event, control_of(event), event.order_no, order.entered, order.inpatient, group=rp)
        )
        rxe = [""] * 21
        rxe[1] = _drug_code(drug)
        rxe[2] = num(dose)
        rxe[4] = units
        if drug.kind == "oral":
            rxe[9] = num(dose * times * days)
            rxe[10] = units
            rxe[18] = f"{num(dose * times)}^{drug.unit_code}&{esc(unit)}&MR9P"
            rxe[20] = "IHP^入院処方^MR9P" if order.inpatient else "OHP^外来処方^MR9P~OHI^院内処方^MR9P"
        rxe[14] = esc(event.order_no)
        segs.append(segment("RXE", *rxe))
        # TQ1-6 (service duration) is N for injections (OMP-02); TQ1-9 (priority) is N for both.
        duration = days if data_type == "OMP-01" else None
        repeat = f"{_usage_code(usage)}&{esc(usage)}&99RHU"
        segs.append(tq1(order.entered, duration_days=duration, usage=repeat))
        segs.append(segment("RXR", _route(drug)))
    return order_file(data_type, order.entered, event, segs)


def omp_01(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _rde(ctx, event, enc, order, "OMP-01")


def omp_02(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _rde(ctx, event, enc, order, "OMP-02")


def _ras(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo, data_type: str) -> Built:
    drugs = tables.drugs()
    segs = [msh(ctx, event, "RAS^O17^RAS_O17"), pid(ctx, event), pv1(ctx, event, enc)]
    for rp, (key, dose, unit, _times, _days, _usage) in enumerate(_drug_lines(event), start=1):
        drug = drugs[key]
        segs.append(orc(ctx, event, "SC", event.order_no, order.entered, order.inpatient, group=rp))
        segs.append(
            segment(
                "RXA",
                "0",
                str(event.payload.get("dose_no", 1)),
                ts(event.time),
                ts(event.time),
                _drug_code(drug),
                num(dose),
                components(drug.unit_code, esc(unit), "MR9P"),
            )
        )
        segs.append(segment("RXR", _route(drug)))
    return order_file(data_type, event.time, event, segs)


def omp_11(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _ras(ctx, event, enc, order, "OMP-11")


def omp_12(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _ras(ctx, event, enc, order, "OMP-12")


def omd(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    diet = event.payload["diet"]
    code = "RHD" + hashlib.sha1(diet.encode()).hexdigest()[:5].upper()
    segs = [
        msh(ctx, event, "OMD^O03^OMD_O03"),
        pid(ctx, event),
        pv1(ctx, event, enc),
        orc(
            ctx,
            event,
            control_of(event),
            event.order_no,
            order.entered,
            order.inpatient,
            facility_fields=False,
        ),
        tq1(order.entered),
        segment("ODS", "D", "", components(code, esc(diet), "99RHD")),
    ]
    return order_file("OMD", order.entered, event, segs)
