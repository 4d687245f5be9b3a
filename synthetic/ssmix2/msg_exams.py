"""Laboratory (OML-01/11), radiology, endoscopy and physiology (OMG-01/02/03/11/12/13) messages."""

from __future__ import annotations

from hl7wire import components, segment
from synthetic import tables
from synthetic.model import Event
from synthetic.ssmix2.msg_drugs import OrderInfo
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
    priority,
    pv1,
    tq1,
    ts,
    xcn,
)
from synthetic.ssmix2.text import esc

ECG_CODES = {
    "hr": ("32769", "心拍数", "/min"),
    "pq": ("32770", "PQ時間", "ms"),
    "qrs": ("58240", "QRS幅", "ms"),
    "qt": ("56008", "QT時間", "ms"),
    "qtc": ("59136", "QTc", "ms"),
}


def _specimen_groups(panels: list[str]) -> list[tuple[str, list[str]]]:
    """(specimen code, panels with tests on that specimen), in first-seen order."""
    labs = tables.labs()
    groups: dict[str, list[str]] = {}
    for panel in panels:
        for test in labs.values():
            if panel in test.panels and test.specimen_code:
                members = groups.setdefault(test.specimen_code, [])
                if panel not in members:
                    members.append(panel)
    return list(groups.items())


def _specimen_name(code: str) -> str:
    return next(t.specimen_name for t in tables.labs().values() if t.specimen_code == code)


def _panel(panel: str) -> str:
    code, name = tables.lab_panels()[panel]
    return components(code, esc(name), "99RHP")


def oml_01(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    segs = [msh(ctx, event, "OML^O33^OML_O33"), pid(ctx, event), pv1(ctx, event, enc)]
    for n, (specimen, panels) in enumerate(_specimen_groups(event.payload["panels"]), start=1):
        segs.append(
            segment("SPM", str(n), "", "", components(specimen, esc(_specimen_name(specimen)), "JC10"))
        )
        for panel in panels:
            segs.append(orc(ctx, event, control_of(event), event.order_no, order.entered, order.inpatient))
            segs.append(tq1(order.entered, priority(enc, order.entered, imaging=False)))
            segs.append(segment("OBR", "1", esc(event.order_no), "", _panel(panel)))
    return order_file("OML-01", order.entered, event, segs)


def oml_11(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    labs = tables.labs()
    collected = order.entered
    panels: list[str] = order.payload.get("panels", [])
    values = {key: value for key, value, _flag in event.payload["items"]}
    segs = [msh(ctx, event, "OUL^R22^OUL_R22"), pid(ctx, event), pv1(ctx, event, enc)]
    reported: set[str] = set()
    for n, (specimen, specimen_panels) in enumerate(_specimen_groups(panels), start=1):
        spm = [""] * 17
        spm[0] = str(n)
        spm[3] = components(specimen, esc(_specimen_name(specimen)), "JC10")
        spm[16] = ts(collected)
        segs.append(segment("SPM", *spm))
        for panel in specimen_panels:
            items = [
                t
                for t in labs.values()
                if panel in t.panels
                and t.specimen_code == specimen
                and t.key in values
                and t.key not in reported
            ]
            if not items:
                continue
            obr = [""] * 25
            obr[0] = "1"
            obr[1] = esc(event.order_no)
            obr[3] = _panel(panel)
            obr[6] = ts(collected)
            obr[21] = ts(event.time)  # OBR-25 result status is N in OML-11 (usage.csv)
            segs.append(segment("OBR", *obr))
            segs.append(orc(ctx, event, "SC", event.order_no, event.time, order.inpatient))
            for k, test in enumerate(items, start=1):
                reported.add(test.key)
                value = values[test.key]
                numeric = test.value_type == "NM" and _is_decimal(value)
                obx = [""] * 14
                obx[0] = str(k)
                obx[1] = "NM" if numeric else "ST"
                obx[2] = components(test.code, esc(test.name), test.system)
                obx[4] = esc(value)
                if test.unit:
                    obx[5] = components(esc(test.unit_ascii), esc(test.unit), "ISO+")
                if test.low is not None and test.high is not None:
                    obx[6] = f"{num(test.low)}-{num(test.high)}"
                # OBX-8 abnormal flag is N in OML-11 (usage.csv): the reference range tells the reader.
                obx[10] = "F"
                obx[13] = ts(event.time)
                segs.append(segment("OBX", *obx))
    return order_file("OML-11", collected, event, segs)


def _is_decimal(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _procedure(key: str) -> str:
    proc = tables.procedures()[key]
    if proc.jj1017:
        return components(proc.jj1017, esc(proc.name), "JJ1017")
    return components(proc.local_code, esc(proc.name), "99RHR")


def _omg(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo, data_type: str) -> Built:
    obr = [""] * 16
    obr[0] = "1"
    obr[1] = esc(event.order_no)
    obr[3] = _procedure(event.payload["procedure"])
    obr[15] = xcn(ctx, event.doctor_id)
    segs = [
        msh(ctx, event, "OMG^O19^OMG_O19"),
        pid(ctx, event),
        pv1(ctx, event, enc),
        orc(ctx, event, control_of(event), event.order_no, order.entered, order.inpatient),
        tq1(order.entered, priority(enc, order.entered, imaging=data_type == "OMG-01")),
        segment("OBR", *obr),
    ]
    return order_file(data_type, order.entered, event, segs)


def omg_01(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _omg(ctx, event, enc, order, "OMG-01")


def omg_02(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _omg(ctx, event, enc, order, "OMG-02")


def omg_03(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _omg(ctx, event, enc, order, "OMG-03")


def _performed_obr(ctx: MessageContext, event: Event) -> str:
    obr = [""] * 25
    obr[0] = "1"
    obr[1] = esc(event.order_no)
    obr[3] = _procedure(event.payload["procedure"])
    obr[6] = ts(event.time)
    obr[15] = xcn(ctx, event.doctor_id)
    obr[24] = "F"
    return segment("OBR", *obr)


def _omi(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo, data_type: str) -> Built:
    p = event.payload
    segs = [
        msh(ctx, event, "OMI^Z23^OMI_Z23"),
        pid(ctx, event),
        pv1(ctx, event, enc),
        orc(ctx, event, "SC", event.order_no, order.entered, order.inpatient),
        tq1(event.time, priority(enc, order.entered, imaging=data_type == "OMG-11")),
        _performed_obr(ctx, event),
        segment("ZE1", "1", "RS", _procedure(p["procedure"]), "1"),
        segment(
            "IPC",
            esc(event.order_no),
            esc(event.order_no),
            p["study_uid"],
            esc(event.order_no),
            components(p["modality"], "", "DCM"),
        ),
    ]
    return order_file(data_type, event.time, event, segs)


def omg_11(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _omi(ctx, event, enc, order, "OMG-11")


def omg_12(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _omi(ctx, event, enc, order, "OMG-12")


def omg_13(ctx: MessageContext, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    segs = [
        msh(ctx, event, "ORU^R01^ORU_R01"),
        pid(ctx, event),
        pv1(ctx, event, enc),
        orc(ctx, event, "SC", event.order_no, order.entered, order.inpatient),
        _performed_obr(ctx, event),
        tq1(event.time, priority(enc, order.entered, imaging=False)),
    ]
    measurements = event.payload.get("measurements", {})
    n = 0
    for key, (code, name, unit) in ECG_CODES.items():
        if key in measurements:
            n += 1
            obx = [""] * 14
            obx[0], obx[1], obx[2] = str(n), "NM", components(code, esc(name), "99MFR")
            obx[4], obx[5], obx[10], obx[13] = (
                str(measurements[key]),
                components(unit, unit, "ISO+"),
                "F",
                ts(event.time),
            )
            segs.append(segment("OBX", *obx))
    if "rhythm" in measurements:
        n += 1
        rhythm = "心房細動" if measurements["rhythm"] == "af" else "洞調律"
        segs.append(
            segment(
                "OBX",
                str(n),
                "ST",
                "RHM001^調律^99RHM",
                "",
                rhythm,
                "",
                "",
                "",
                "",
                "",
                "F",
                "",
                "",
                ts(event.time),
            )
        )
    if "study_uid" in event.payload and n == 0:
        segs.append(
            segment(
                "OBX",
                "1",
                "ST",
                "RHM002^検査実施^99RHM",
                "",
                "実施済",
                "",
                "",
                "",
                "",
                "",
                "F",
                "",
                "",
                ts(event.time),
            )
        )
    return order_file("OMG-13", event.time, event, segs)
