"""One facility's files as the gateway sees them: listing by patient, the PACS index, safe lookup by ID.

Listing goes through :class:`synthetic.ssmix2.StorageReader` (standardized and extended storage, read
afresh on every request, symlinks not followed); the PACS
has no per-patient folders, so a :class:`StudyIndex` reads one header per study (``PatientID``, which the
world sets to the local patient ID, as the OMG-11/12 IPC-3 that names the study does) the first time it is
needed — in a background thread started with the gateway, so startup does not wait for it.

Files are found only from an :class:`~simulator.gateway.entries.EntryRef`, and a path is used only when
``realpath`` of it is exactly the facility root joined with the ref's parts: anything beneath a root that
is a symlink (or not a regular file) is treated as absent, both when listing (the reader's
``follow_symlinks=False``: reported, not listed) and when fetching (:func:`_real_file`). The roots
themselves may be symlinks (a world on another volume).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from synthetic.ssmix2 import StorageReader
from synthetic.ssmix2.layout import EXTENDED, IMAGES, STORAGE
from synthetic.ssmix2.reader import DocumentEntry, Entry, Problem

from .entries import (
    DATA_TYPES,
    INSTANCE_FILE,
    PATIENT_ID,
    STUDY_UID,
    WAVEFORM_CATEGORY,
    EntryRef,
    data_type_title,
    document_ref_of_names,
    document_title,
    document_type,
    hl7_ref_of_name,
    image_refs,
)
from .errors import EntryIdError, GatewayError

__all__ = [
    "CONTENT_TYPES",
    "MFER_CONTENT_TYPE",
    "Catalog",
    "FacilityConfig",
    "Study",
    "StudyIndex",
    "content_type",
]

log = logging.getLogger(__name__)

CONTENT_TYPES: dict[str, str] = {
    "hl7": "application/hl7-v2; charset=ISO-2022-JP",
    "document": "application/xml",
    "image": "application/dicom",
}
#: MFER has no registered media type; an ``x-`` type says what the bytes are (our choice).
MFER_CONTENT_TYPE = "application/x-mfer"
DOCUMENT_CATEGORY_SET = frozenset(
    {"discharge_summaries", "referral_letters", "progress_notes", "nursing_notes", "other_documents"}
)
#: Categories with files in extended storage: the documents, and the MFER waveforms (physiology).
EXTENDED_CATEGORY_SET = DOCUMENT_CATEGORY_SET | {WAVEFORM_CATEGORY}
NOT_LISTED = "its entry ID does not name it; not listed"
_HEADER_TAGS = ["PatientID", "Modality", "StudyDate", "StudyTime", "StudyDescription", "StudyInstanceUID"]


@dataclass(frozen=True, slots=True)
class FacilityConfig:
    """What a gateway needs from ``world.json`` about its facility, and where its files are."""

    code: str
    name: str
    secret: str
    disclosure: frozenset[str]
    link_type: str
    storage: Path
    extended: Path
    images: Path

    @classmethod
    def from_world(cls, world_dir: Path, facility: Mapping[str, Any]) -> FacilityConfig:
        code = str(facility.get("code", ""))
        if facility.get("network_role") != "disclosing":
            raise GatewayError(f"facility {code} is not a disclosing facility: it has no gateway")
        secret = facility.get("gateway_secret")
        if not isinstance(secret, str) or not secret:
            raise GatewayError(f"facility {code} has no gateway_secret in world.json")
        return cls(
            code=code,
            name=str(facility.get("name", "")),
            secret=secret,
            disclosure=frozenset(facility.get("disclosure") or ()),
            link_type=str(facility.get("link_type", "")),
            storage=world_dir / STORAGE / code,
            extended=world_dir / EXTENDED / code,
            images=world_dir / IMAGES / code,
        )


@dataclass(frozen=True, slots=True)
class Study:
    """One PACS study: whose it is (DICOM PatientID), when, and its instance files with their sizes."""

    uid: str
    patient: str
    modality: str
    date: str  # YYYYMMDD
    time: str  # HHMMSS
    description: str
    instances: tuple[tuple[str, int], ...]


class StudyIndex:
    """StudyInstanceUID → :class:`Study` for one PACS root, built once (thread-safe, lazily or in the
    background with :meth:`warm`). The world's files do not change while a gateway runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._studies: dict[str, Study] | None = None
        self._by_patient: dict[str, list[Study]] = {}

    def warm(self) -> threading.Thread:
        thread = threading.Thread(target=self._build, name=f"study-index {self.root.name}", daemon=True)
        thread.start()
        return thread

    @property
    def ready(self) -> bool:
        """True once built (asking then never waits for the scan)."""
        return self._studies is not None

    def get(self, uid: str) -> Study | None:
        return self._build().get(uid)

    def of_patient(self, patient: str) -> list[Study]:
        self._build()
        return self._by_patient.get(patient, [])

    def __len__(self) -> int:
        return len(self._build())

    def _build(self) -> dict[str, Study]:
        with self._lock:
            if self._studies is None:
                studies = {s.uid: s for s in _scan_studies(self.root)}
                for study in sorted(studies.values(), key=lambda s: (s.date, s.time, s.uid)):
                    self._by_patient.setdefault(study.patient, []).append(study)
                self._studies = studies
            return self._studies


def _scan_studies(root: Path) -> list[Study]:
    try:
        folders = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    found = []
    for folder in folders:
        if not folder.is_dir(follow_symlinks=False) or not STUDY_UID.fullmatch(folder.name):
            log.warning("%s: %s is not a study folder; skipped", root, folder.name)
            continue
        instances = sorted(
            (entry.name, entry.stat(follow_symlinks=False).st_size)
            for entry in os.scandir(folder.path)
            if entry.is_file(follow_symlinks=False) and INSTANCE_FILE.fullmatch(entry.name)
        )
        if not instances:
            continue
        study = _read_study(Path(folder.path), folder.name, tuple(instances))
        if study is not None:
            found.append(study)
    return found


def _read_study(folder: Path, uid: str, instances: tuple[tuple[str, int], ...]) -> Study | None:
    path = folder / instances[0][0]
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        patient = str(ds.get("PatientID", ""))
        modality = str(ds.get("Modality", ""))
        date = str(ds.get("StudyDate", ""))
        raw_time = str(ds.get("StudyTime", "")).split(".")[0]
        description = str(ds.get("StudyDescription", ""))
        header_uid = str(ds.get("StudyInstanceUID", ""))
    except (OSError, InvalidDicomError, ValueError, LookupError) as exc:
        log.warning("%s: unreadable DICOM header (%s); study skipped", path, exc)
        return None
    time = (raw_time + "000000")[:6]
    if header_uid != uid or not PATIENT_ID.fullmatch(patient) or len(date) != 8 or not date.isdigit():
        log.warning("%s: study UID, PatientID or StudyDate unusable; study skipped", path)
        return None
    if not time.isdigit():
        time = "000000"
    return Study(uid, patient, modality, date, time, description, instances)


def _iso(stamp: str) -> str:
    """``YYYYMMDDHHMMSS…`` → ``YYYY-MM-DDTHH:MM:SS``."""
    s = stamp[:14].ljust(14, "0")
    return f"{s[0:4]}-{s[4:6]}-{s[6:8]}T{s[8:10]}:{s[10:12]}:{s[12:14]}"


class Catalog:
    """A facility's entries, filtered by what it discloses. Thread-safe (listings run in the server's
    worker threads).

    Nothing of a listing is kept between requests: storage may change under a running gateway, and a
    listing is read from the folders each time (only the PACS index is built once, see
    :class:`StudyIndex`). A listing cache was considered and not built: the viewers of the live-network
    benchmark cycle through thousands of patients, so every listing is a first one (cold folders, where
    disk reads dominate), and keeping a cached listing correct would need a ``stat`` of each of its folders
    and files per request anyway."""

    def __init__(self, config: FacilityConfig) -> None:
        self.config = config
        self.reader = StorageReader(config.storage, config.extended, follow_symlinks=False)
        self.studies = StudyIndex(config.images)
        self._roots = {
            STORAGE: os.path.realpath(config.storage),
            EXTENDED: os.path.realpath(config.extended),
            IMAGES: os.path.realpath(config.images),
        }

    @property
    def code(self) -> str:
        return self.config.code

    def discloses(self, category: str) -> bool:
        return category in self.config.disclosure

    # -- lookup -------------------------------------------------------------------------------------
    def locate(self, ref: EntryRef) -> str | None:
        """The real path of the file ``ref`` names, or None when it is absent, not a regular file, behind
        a symlink beneath the root, or (images) not a study of ``ref.patient`` with that modality."""
        if ref.kind == "image":
            study = self.studies.get(ref.parts[0])
            if study is None or study.patient != ref.patient or study.modality != ref.data_type:
                return None
        return _real_file(self._roots[ref.root], ref.parts)

    # -- listing ------------------------------------------------------------------------------------
    def entries(
        self,
        patient: str,
        *,
        types: Collection[str] | None = None,
        categories: Collection[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        history: bool = False,
    ) -> list[dict[str, Any]]:
        """The patient's entries in disclosed categories, as JSON objects sorted by time then ID.

        ``types`` match SS-MIX2 data types, a document's LOINC code, local code or whole type folder, or a
        modality; ``since``/``until`` are inclusive ``YYYYMMDD`` care dates (document date folder, study
        date); entries without a care date (``-``) are always listed, as the reader does.
        """
        allowed = set(self.config.disclosure)
        if categories is not None:
            allowed &= set(categories)
        wanted = set(types) if types is not None else None
        out: list[dict[str, Any]] = []
        hl7_types = [
            t for t, (c, _) in DATA_TYPES.items() if c in allowed and (wanted is None or t in wanted)
        ]
        if hl7_types:
            listing = self.reader.entries(
                patient, data_types=hl7_types, since=since, until=until, history=history
            )
            self._report(listing.problems)
            for e in listing.entries:
                item = self._hl7(e)
                if item is not None:
                    out.append(item)
        if allowed & EXTENDED_CATEGORY_SET:
            documents = self.reader.documents(patient, since=since, until=until, history=history)
            self._report(documents.problems)
            for d in documents.entries:
                item = self._document(d, allowed, wanted)
                if item is not None:
                    out.append(item)
        if "images" in allowed:
            for study in self.studies.of_patient(patient):
                if (wanted is None or study.modality in wanted) and _in_range(study.date, since, until):
                    out.extend(self._instances(study))
        out.sort(key=_time_and_id)
        return out

    def study_instances(self, uid: str) -> list[dict[str, Any]] | None:
        """The study's instances as entries (None when the PACS has no such study)."""
        study = self.studies.get(uid)
        return None if study is None else self._instances(study)

    def _report(self, problems: list[Problem]) -> None:
        for problem in problems:
            log.warning("%s: %s: %s", self.code, problem.path, problem.reason)

    def _hl7(self, e: Entry) -> dict[str, Any] | None:
        try:
            ref = hl7_ref_of_name(e.name)
        except EntryIdError as exc:
            log.warning("%s: %s: no entry ID (%s)", self.code, e.relative, exc.reason)
            return None
        if "/".join(ref.parts) != e.relative:  # e.g. a name the grammar accepts but does not cover
            log.warning("%s: %s: %s", self.code, e.relative, NOT_LISTED)
            return None
        name = e.name
        title = data_type_title(name.data_type)
        return _item(ref, _iso(name.timestamp), name.care_date, name.flag, e.size, title)

    def _document(
        self, d: DocumentEntry, allowed: set[str], wanted: set[str] | None
    ) -> dict[str, Any] | None:
        data_type, category = document_type(d.data_type)
        if category not in allowed:
            return None
        if wanted is not None and not wanted & {data_type, d.data_type, d.data_type.split("^")[0]}:
            return None
        parts = d.relative.split("/")
        try:
            ref = document_ref_of_names(*parts[4:]) if len(parts) == 7 else None
        except EntryIdError as exc:
            log.warning("%s: %s: no entry ID (%s)", self.code, d.relative, exc.reason)
            return None
        if ref is None or list(ref.parts) != parts:
            log.warning("%s: %s: %s", self.code, d.relative, NOT_LISTED)
            return None
        return _item(ref, _iso(d.timestamp), d.care_date, d.flag, d.size, document_title(d.data_type))

    def _instances(self, study: Study) -> list[dict[str, Any]]:
        try:
            refs = image_refs(study.patient, study.modality, study.uid, [name for name, _ in study.instances])
        except EntryIdError as exc:
            log.warning("%s: study %s: no entry IDs (%s)", self.code, study.uid, exc.reason)
            return []
        time, label = _iso(study.date + study.time), study.description or study.modality
        return [
            _item(ref, time, study.date, "1", size, f"{label} {name.removesuffix('.dcm')}")
            for ref, (name, size) in zip(refs, study.instances, strict=True)
        ]


def content_type(ref: EntryRef) -> str:
    """The media type of an entry: by kind, except MFER waveform files (``.mwf``) in extended storage."""
    if ref.kind == "document" and ref.parts[-1].endswith(".mwf"):
        return MFER_CONTENT_TYPE
    return CONTENT_TYPES[ref.kind]


def _real_file(root: str, parts: tuple[str, ...]) -> str | None:
    """``root/parts…`` when every folder on the way is a real folder (not a symlink) and the last part a
    regular file — what ``realpath(p) == p`` says for parts without ``.``/``..``, at one ``lstat`` per
    part."""
    path = root
    last = len(parts) - 1
    for index, part in enumerate(parts):
        path = f"{path}/{part}"
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        if index == last:
            return path if stat.S_ISREG(mode) else None
        if not stat.S_ISDIR(mode):
            return None
    return None


def _time_and_id(item: dict[str, Any]) -> tuple[str, str]:
    return item["time"], item["id"]


def _in_range(care_date: str, since: str | None, until: str | None) -> bool:
    if care_date == "-":
        return True
    return not ((since and care_date < since) or (until and care_date > until))


def _item(ref: EntryRef, time: str, care_date: str, flag: str, size: int, title: str) -> dict[str, Any]:
    return {
        "id": ref.entry_id,
        "kind": ref.kind,
        "data_type": ref.data_type,
        "category": ref.category,
        "time": time,
        "care_date": care_date,
        "flag": flag,
        "size": size,
        "content_type": content_type(ref),
        "title": title,
    }
