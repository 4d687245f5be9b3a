"""Writes each disclosing facility's data: SS-MIX2 standardized storage, extended storage, DICOM images.

One call per patient (``write_patient``), so generation can spread patients over processes: every file
of a patient lives under that patient's own folders, and no two workers touch the same file.

Condition flags follow the update/delete procedure of docs/ssmix2.md §1.5. The procedure renames
files as updates arrive; since the whole history of a patient is known here, each file is written once
under its final name, which is the state the procedure leaves behind: for every (patient, care date,
data type, order number) the latest version has flag 1 and earlier versions flag 2; when the record was
deleted (a cancelled order), all its versions and the delete message carry flag 0.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from synthetic import documents as docs
from synthetic import tables
from synthetic.documents import render_cda
from synthetic.model import Event, Facility, PatientRecord, Staff
from synthetic.pathway import pathway
from synthetic.ssmix2 import messages as m
from synthetic.ssmix2.layout import EXTENDED, IMAGES, STORAGE, FileName, order_number, timestamp17
from synthetic.waveform import ecg_file

#: Extended-storage document types: kind → (local code, local name, LOINC code, standard name).
DOCUMENT_FOLDERS = {
    "discharge_summary": ("RHDS01", "DischargeSummary", "18842-5", "退院時サマリー"),
    "referral_letter": ("RHRF01", "ReferralLetter", "57133-1", "診療情報提供書"),
    "progress_note": ("RHPN01", "ProgressNote", "11506-3", "経過記録"),
    "nursing_note": ("RHNN01", "NursingNote", "34746-8", "看護記録"),
}
MAIN_DOCUMENT = "main_document.xml"
#: Extended-storage type folder of the MFER resting ECGs: a local code only (no standard document code
#: was verified for a waveform file), in the spec's ``local^name^system`` form (§1.7).
WAVEFORM_FOLDER = "MFER-ECG12^標準12誘導心電図^99RHX"
WAVEFORM_FILE = "main_document.mwf"


@dataclass
class WriteStats:
    files: int = 0
    bytes: int = 0
    documents: int = 0
    images: int = 0
    waveforms: int = 0
    by_type: Counter[str] = field(default_factory=Counter)

    def add(self, other: WriteStats) -> None:
        self.files += other.files
        self.bytes += other.bytes
        self.documents += other.documents
        self.images += other.images
        self.waveforms += other.waveforms
        self.by_type.update(other.by_type)


@dataclass(frozen=True, slots=True)
class Options:
    documents: bool = True
    images: bool = True
    waveforms: bool = True  # MFER 12-lead ECGs in extended storage, one per ECG result
    dicom_matrix: int = 64
    dicom_max_images: int = 3


@dataclass(slots=True)
class _Version:
    name: FileName
    data: bytes
    deleted: bool


class StorageWriter:
    """Writes patients' records into ``out/storage``, ``out/extended`` and ``out/images``."""

    def __init__(self, out: Path, facilities: list[Facility], options: Options | None = None) -> None:
        self.out = out.absolute()  # _ensure_dir walks parents; a relative path would end at ""
        self.options = options or Options()
        self.facilities = {f.code: f for f in facilities}
        self.staff: dict[str, dict[str, Staff]] = {
            f.code: {s.staff_id: s for s in f.staff} for f in facilities
        }
        self.departments = tables.departments()
        self._dirs: set[str] = set()

    def write_patient(self, record: PatientRecord) -> WriteStats:
        stats = WriteStats()
        local = {li.facility_code: li.local_id for li in record.local_ids}
        by_facility: dict[str, list[Event]] = {}
        for event in record.events:
            if event.detail == "full":
                by_facility.setdefault(event.facility_code, []).append(event)
        episodes = {e.episode_id: e for e in record.episodes}
        for code, events in by_facility.items():
            facility = self.facilities[code]
            ctx = m.MessageContext(facility, record.patient, local[code], self.staff[code], self.departments)
            self._write_facility(ctx, events, episodes, stats)
        return stats

    # -- one patient at one facility ----------------------------------------------------------------
    def _write_facility(
        self, ctx: m.MessageContext, events: list[Event], episodes: dict[str, Any], stats: WriteStats
    ) -> None:
        encounters: dict[str, m.Encounter] = {}
        orders: dict[str, m.OrderInfo] = {}
        versions: dict[tuple[str, str, str, str], list[_Version]] = {}
        for n, event in enumerate(events):
            enc = self._encounter(encounters, episodes, event)
            if event.kind == "document":
                if self.options.documents:
                    self._document(ctx, event, enc, stats)
                continue
            if event.kind == "diagnosis":
                self._track_diagnosis(ctx, event, enc)
                nxt = events[n + 1] if n + 1 < len(events) else None
                if nxt is not None and nxt.kind == "diagnosis" and nxt.time == event.time:
                    continue  # several diagnoses at once: one PPR-01 rewrite holds them all
            builder = m.BUILDERS.get(event.kind)
            if builder is None:
                continue
            if event.kind == "ward_transfer":  # PV1-3 is the new ward, PV1-6 the one the patient left
                enc.prior_ward, enc.ward = enc.ward, event.payload.get("to", enc.ward)
            order = None
            if event.order_no:
                if event.kind in m.ORDER_KINDS and event.order_no not in orders:
                    orders[event.order_no] = m.OrderInfo(
                        event.time, enc.setting == "inpatient", event.payload
                    )
                order = orders.get(event.order_no) or m.OrderInfo(event.time, enc.setting == "inpatient", {})
            built = builder(ctx, event, enc, order)
            stamp = timestamp17(event.time + dt.timedelta(seconds=1 + event.event_id % 5), event.event_id)
            name = FileName(
                ctx.local_id, built.care_date, built.data_type, built.order_no, stamp, built.department, "1"
            )
            data = built.text.encode("iso2022_jp")
            versions.setdefault(name.key, []).append(_Version(name, data, event.status == "cancelled"))
            if event.kind in ("radiology_done", "endoscopy_done", "physiology_result"):
                enc.procedures.append((event.payload["procedure"], event.time))
                if self.options.images:
                    self._images(ctx, event, stats)
                if self.options.waveforms and "hr" in event.payload.get("measurements", {}):
                    self._waveform(ctx, event, stats)
            elif event.kind == "lab_result":
                enc.labs.extend((key, value, flag, event.time) for key, value, flag in event.payload["items"])
        root = os.path.join(self.out, STORAGE, ctx.facility.code)
        pid = ctx.local_id
        for history in versions.values():
            deleted = any(v.deleted for v in history)
            for i, version in enumerate(history):
                flag = "0" if deleted else ("1" if i == len(history) - 1 else "2")
                final = version.name.with_flag(flag)
                folder = os.path.join(root, pid[0:3], pid[3:6], pid, final.care_date, final.data_type)
                self._ensure_dir(folder)
                with open(os.path.join(folder, str(final)), "wb") as fh:
                    fh.write(version.data)
                stats.files += 1
                stats.bytes += len(version.data)
                stats.by_type[final.data_type] += 1

    def _ensure_dir(self, folder: str) -> None:
        """mkdir top-down, one call per new directory: a leaf-first attempt fails once per missing
        parent and doubles the syscalls, which dominate on this file system."""
        if folder in self._dirs:
            return
        parent = os.path.dirname(folder)
        if parent and parent != folder and parent not in self._dirs:
            self._ensure_dir(parent)
        with contextlib.suppress(FileExistsError):  # another worker made it first
            os.mkdir(folder)
        if len(self._dirs) > 100_000:
            self._dirs.clear()
        self._dirs.add(folder)

    @staticmethod
    def _encounter(encounters: dict[str, m.Encounter], episodes: dict[str, Any], event: Event) -> m.Encounter:
        key = event.episode_id
        enc = encounters.get(key)
        if enc is None:
            ep = episodes.get(key)
            if ep is None:
                enc = m.Encounter()
            else:
                enc = m.Encounter(
                    setting=ep.setting,
                    admitted=ep.start if ep.setting == "inpatient" else None,
                    discharged=ep.end,
                    pathway=ep.pathway,
                )
            encounters[key] = enc
        if event.kind == "admission":
            enc.ward = event.payload.get("ward", "")
            enc.room = event.payload.get("room", "")
            enc.bed = event.payload.get("bed", "")
            enc.admitted = event.time
        return enc

    @staticmethod
    def _track_diagnosis(ctx: m.MessageContext, event: Event, enc: m.Encounter) -> None:
        p = event.payload
        state = ctx.diagnoses.get(p["key"])
        if state is None:
            state = m.DiagnosisState(
                p["key"],
                len(ctx.diagnoses) + 1,
                p["status"],
                p["onset"],
                p["main"],
                event.time,
                event.time,
                outpatient=enc.setting != "inpatient",
            )
            ctx.diagnoses[p["key"]] = state
        state.status = p["status"]
        state.updated = event.time
        state.main = state.main or p["main"]
        state.resolved = p.get("resolved", "")

    # -- extended storage and images ------------------------------------------------------------------
    def _document(self, ctx: m.MessageContext, event: Event, enc: m.Encounter, stats: WriteStats) -> None:
        kind = event.payload["doc"]
        local_code, local_name, loinc, standard = DOCUMENT_FOLDERS[kind]
        data = render_cda(self._document_spec(ctx, event, enc))
        date = f"{event.time:%Y%m%d}"
        type_folder = f"{local_code}^{local_name}^99RHX^{loinc}^{standard}^LN"
        stamp = timestamp17(event.time + dt.timedelta(seconds=2), event.event_id)
        dept = event.department or "-"
        content = (
            f"{ctx.local_id}_{date}_{local_code}^{local_name}^99RHX_{event.event_id:015d}_{stamp}_{dept}_1"
        )
        folder = os.path.join(
            self.out,
            EXTENDED,
            ctx.facility.code,
            ctx.local_id[0:3],
            ctx.local_id[3:6],
            ctx.local_id,
            date,
            type_folder,
            content,
        )
        self._ensure_dir(folder)
        with open(os.path.join(folder, MAIN_DOCUMENT), "wb") as fh:
            fh.write(data)
        stats.documents += 1
        stats.bytes += len(data)

    def _waveform(self, ctx: m.MessageContext, event: Event, stats: WriteStats) -> None:
        """The MFER file of an ECG result, in extended storage beside the documents (spec §1.7, §5.6).

        Content folder ``pid_date_<type code>_<order No>_<timestamp>_<dept>_1``, main file
        ``main_document.mwf``; the waveform's intervals are the OMG-13 values (synthetic.waveform.ecg).
        """
        date = f"{event.time:%Y%m%d}"
        stamp = timestamp17(event.time + dt.timedelta(seconds=3), event.event_id)
        dept = event.department or "-"
        order = order_number(event.order_no)
        content = f"{ctx.local_id}_{date}_{WAVEFORM_FOLDER}_{order}_{stamp}_{dept}_1"
        pid = ctx.local_id
        folder = os.path.join(
            self.out, EXTENDED, ctx.facility.code, pid[0:3], pid[3:6], pid, date, WAVEFORM_FOLDER, content
        )
        data = ecg_file(ctx.facility.code, pid, ctx.patient, event)
        self._ensure_dir(folder)
        with open(os.path.join(folder, WAVEFORM_FILE), "wb") as fh:
            fh.write(data)
        stats.waveforms += 1
        stats.bytes += len(data)

    def _document_spec(self, ctx: m.MessageContext, event: Event, enc: m.Encounter) -> docs.DocumentSpec:
        """The facts a CDA document is written from: the episode's diagnoses, procedures, labs and drugs."""
        p = event.payload
        f = ctx.facility
        kind = p["doc"]
        person = self._author(ctx, event, kind)
        patient = _patient_info(ctx)
        dx_table, drug_table, lab_table, proc_table = (
            tables.diagnoses(),
            tables.drugs(),
            tables.labs(),
            tables.procedures(),
        )
        diagnoses = []
        for key in p.get("diagnoses", []):
            state = ctx.diagnoses.get(key)
            onset = dt.date.fromisoformat(state.onset) if state else None
            diagnoses.append(
                docs.Dx(
                    dx_table[key].name, dx_table[key].icd10, onset, state.status if state else "confirmed"
                )
            )
        drugs = [
            docs.Rx(
                drug_table[k].name,
                drug_table[k].dose,
                drug_table[k].unit,
                drug_table[k].usage_text,
                drug_table[k].days,
            )
            for k in p.get("drugs", [])
        ]
        procedures = [docs.Proc(proc_table[k].name, t) for k, t in enc.procedures]
        labs = [
            docs.Lab(lab_table[k].name, v, lab_table[k].unit, flag, t)
            for k, v, flag, t in enc.labs[-60:]
            if flag != "N"
        ][-8:]
        pathway_name = enc.pathway.partition("/")[0]
        titles = pathway_titles(pathway_name)
        recipient = self.facilities.get(p.get("to", ""))
        return docs.DocumentSpec(
            kind=kind,
            document_id=f"{f.code}-{event.event_id}",
            time=event.time,
            patient=patient,
            author=person,
            custodian=_org(f),
            state_title=titles.get(p.get("state", ""), ""),
            day=int(p.get("day", 1)),
            diagnoses=diagnoses,
            procedures=procedures,
            drugs=drugs,
            labs=labs,
            admitted=enc.admitted,
            discharged=event.time if kind == "discharge_summary" else None,
            plan_title=titles.get(p.get("plan", ""), ""),
            recipient=_org(recipient) if recipient is not None else None,
            recipient_department=(
                self.departments.get(recipient.departments[0], "")
                if recipient is not None and recipient.departments
                else ""
            ),
        )

    def _author(self, ctx: m.MessageContext, event: Event, kind: str) -> docs.CdaPerson:
        """Who signs the document: the event's doctor, a nurse for nursing notes, else the first doctor."""
        f = ctx.facility
        author = ctx.staff.get(event.doctor_id)
        if kind == "nursing_note":
            nurses = [s for s in f.staff if s.role == "nurse"]
            author = nurses[event.event_id % len(nurses)] if nurses else author
        if author is None:
            author = next((s for s in f.staff if s.role in ("doctor", "dentist")), f.staff[0])
        dept = event.department or author.department
        return docs.CdaPerson(
            author.staff_id,
            author.name.family,
            author.name.given,
            author.name.family_kana,
            author.name.given_kana,
            dept,
            self.departments.get(dept, ""),
        )

    def _images(self, ctx: m.MessageContext, event: Event, stats: WriteStats) -> None:
        from synthetic.imaging import StudySpec, write_study

        p = event.payload
        if "study_uid" not in p:
            return
        proc = tables.procedures()[p["procedure"]]
        n = ctx.patient.name
        referring = ctx.staff.get(event.doctor_id)
        physician = ""
        if referring is not None:
            r = referring.name
            physician = (
                f"{r.family_romaji}^{r.given_romaji}={r.family}^{r.given}={r.family_kana}^{r.given_kana}"
            )
        spec = StudySpec(
            study_uid=p["study_uid"],
            accession=event.order_no,
            modality=proc.modality,
            body_part=proc.body_part,
            description=proc.name,
            study_time=event.time,
            series=proc.series,
            images_per_series=proc.images_per_series,
            patient_id=ctx.local_id,
            name_romaji=f"{n.family_romaji}^{n.given_romaji}",
            name_kanji=f"{n.family}^{n.given}",
            name_kana=f"{n.family_kana}^{n.given_kana}",
            birth_date=ctx.patient.birth_date,
            sex=ctx.patient.sex,
            institution=ctx.facility.name,
            referring_physician=physician,
        )
        paths = write_study(
            spec,
            self.out / IMAGES / ctx.facility.code,
            matrix=self.options.dicom_matrix,
            max_images_per_series=self.options.dicom_max_images,
        )
        stats.images += len(paths)
        stats.bytes += sum(path.stat().st_size for path in paths)


def _org(f: Facility) -> docs.Org:
    return docs.Org(f.code, f.name, f.address, f.postcode, f.phone)


@cache
def pathway_titles(name: str) -> dict[str, str]:
    """State name → title of a pathway ("" for unknown pathways)."""
    if not name:
        return {}
    return {state: spec.title for state, spec in pathway(name).states.items()}


def _patient_info(ctx: m.MessageContext) -> docs.PatientInfo:
    """The patient as the facility knows them (its local ID and OID; the registered variant surname)."""
    pt = ctx.patient
    return docs.PatientInfo(
        ctx.local_id,
        ctx.facility.oid,
        pt.name.family_variant or pt.name.family,
        pt.name.given,
        pt.name.family_kana,
        pt.name.given_kana,
        pt.birth_date,
        pt.sex,
        pt.address.postcode,
        pt.address.text,
        pt.phone,
    )
