"""Reading one facility's SS-MIX2 storage: list a patient's entries, read one, walk an order's history.

Used by the gateways (which serve a facility's storage to the hub) and by tests. It works on anyone's
storage, not only ours, and skips nothing silently: a file whose name does not parse, that sits in the
wrong folder, or that does not decode is returned as a :class:`Problem` beside the entries.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from synthetic.ssmix2.layout import FileName, patient_dir
from synthetic.ssmix2.text import unescape


@dataclass(frozen=True, slots=True)
class Entry:
    """One standardized-storage file with the metadata its name and folder carry."""

    path: Path  # relative to the storage root
    name: FileName
    size: int

    @property
    def data_type(self) -> str:
        return self.name.data_type

    @property
    def care_date(self) -> str:
        return self.name.care_date

    @property
    def order_no(self) -> str:
        return self.name.order_no

    @property
    def timestamp(self) -> str:
        return self.name.timestamp

    @property
    def department(self) -> str:
        return self.name.department

    @property
    def flag(self) -> str:
        return self.name.flag


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """One extended-storage document: its data-type folder, content folder and main document file."""

    path: Path  # the main document, relative to the extended-storage root
    data_type: str  # the data-type folder name (local^name^system^standard code^name^system)
    standard_code: str  # e.g. LOINC 18842-5
    care_date: str
    key: str
    timestamp: str
    department: str
    flag: str
    size: int


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    reason: str


@dataclass(slots=True)
class Listing:
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(slots=True)
class DocumentListing:
    entries: list[DocumentEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded HL7 v2 message: segments split on CR, fields on ``|`` (after decoding, never before)."""

    text: str
    segments: tuple[tuple[str, ...], ...]

    @classmethod
    def decode(cls, data: bytes, encoding: str = "iso2022_jp") -> Message:
        text = data.decode(encoding)
        lines = [s for s in text.rstrip("\x1c\r\n").split("\r") if s]
        return cls(text, tuple(tuple(line.split("|")) for line in lines))

    def all(self, name: str) -> list[tuple[str, ...]]:
        return [s for s in self.segments if s[0] == name]

    def field(self, name: str, number: int, occurrence: int = 0) -> str:
        """SEG-n of the given occurrence, HL7-unescaped ("" when absent). MSH-1 is the field separator."""
        found = self.all(name)
        if occurrence >= len(found):
            return ""
        seg = found[occurrence]
        if name == "MSH":
            if number == 1:
                return "|"
            index = number - 1
        else:
            index = number
        return unescape(seg[index]) if index < len(seg) else ""

    @property
    def message_type(self) -> str:
        return self.field("MSH", 9)


class StorageReader:
    """A facility's standardized storage (and, optionally, its extended storage) on disk."""

    def __init__(self, root: Path, extended_root: Path | None = None) -> None:
        self.root = root
        self.extended_root = extended_root

    def patient_ids(self) -> list[str]:
        ids = []
        for first in sorted(_dirs(self.root)):
            for second in sorted(_dirs(self.root / first)):
                ids.extend(sorted(_dirs(self.root / first / second)))
        return ids

    def entries(
        self,
        patient_id: str,
        *,
        data_types: Iterable[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        history: bool = False,
    ) -> Listing:
        """The patient's files, oldest first. Default: current versions only (flag 1); ``history`` adds
        superseded (2) and deleted (0) ones. ``since``/``until`` are inclusive ``YYYYMMDD`` care dates
        (files in the ``-`` folder have no care date and are always listed)."""
        listing = Listing()
        base = patient_dir(self.root, patient_id)
        if not base.is_dir():
            return listing
        wanted = set(data_types) if data_types is not None else None
        for date in sorted(os.listdir(base)):
            date_dir = base / date
            if not date_dir.is_dir():
                listing.problems.append(
                    Problem(date_dir.relative_to(self.root), "a file where a date folder belongs")
                )
                continue
            if date != "-" and ((since and date < since) or (until and date > until)):
                continue
            for data_type in sorted(os.listdir(date_dir)):
                if wanted is not None and data_type not in wanted:
                    continue
                type_dir = date_dir / data_type
                if not type_dir.is_dir():
                    listing.problems.append(
                        Problem(type_dir.relative_to(self.root), "a file where a type folder belongs")
                    )
                    continue
                for name in os.listdir(type_dir):
                    self._entry(type_dir / name, patient_id, date, data_type, history, listing)
        listing.entries.sort(key=lambda e: (e.timestamp, str(e.path)))
        return listing

    def _entry(
        self, path: Path, pid: str, date: str, data_type: str, history: bool, listing: Listing
    ) -> None:
        relative = path.relative_to(self.root)
        parsed = FileName.parse(path.name)
        if parsed is None:
            listing.problems.append(Problem(relative, "file name does not follow the SS-MIX2 grammar"))
            return
        if (parsed.patient_id, parsed.care_date, parsed.data_type) != (pid, date, data_type):
            listing.problems.append(Problem(relative, "file name does not match its folder"))
            return
        if not history and parsed.flag != "1":
            return
        try:
            size = path.stat().st_size
        except OSError as exc:
            listing.problems.append(Problem(relative, f"unreadable: {exc.strerror}"))
            return
        listing.entries.append(Entry(relative, parsed, size))

    def read(self, entry: Entry | Path) -> Message:
        """Read and decode one entry; a file that does not decode raises ``UnicodeDecodeError``."""
        relative = entry.path if isinstance(entry, Entry) else entry
        return Message.decode((self.root / relative).read_bytes())

    def read_bytes(self, entry: Entry | Path) -> bytes:
        relative = entry.path if isinstance(entry, Entry) else entry
        return (self.root / relative).read_bytes()

    def history(self, patient_id: str, care_date: str, data_type: str, order_no: str) -> list[Entry]:
        """Every version of one record (same patient, care date, data type and order), oldest first."""
        listing = self.entries(patient_id, data_types=[data_type], history=True)
        return [e for e in listing.entries if e.name.key == (patient_id, care_date, data_type, order_no)]

    def documents(self, patient_id: str, *, history: bool = False) -> DocumentListing:
        """The patient's extended-storage documents (main document of each content folder)."""
        listing = DocumentListing()
        if self.extended_root is None:
            return listing
        base = patient_dir(self.extended_root, patient_id)
        if not base.is_dir():
            return listing
        for date in sorted(_dirs(base)):
            for type_folder in sorted(_dirs(base / date)):
                parts = type_folder.split("^")
                standard = parts[3] if len(parts) >= 6 else ""
                for content in sorted(_dirs(base / date / type_folder)):
                    folder = base / date / type_folder / content
                    fields = content.split("_")
                    if len(fields) != 7 or fields[0] != patient_id or fields[1] != date:
                        listing.problems.append(
                            Problem(
                                folder.relative_to(self.extended_root),
                                "content folder name does not follow the 7-field grammar",
                            )
                        )
                        continue
                    if not history and fields[6] != "1":
                        continue
                    mains = sorted(p for p in os.listdir(folder) if p.startswith("main_document"))
                    if not mains:
                        listing.problems.append(
                            Problem(folder.relative_to(self.extended_root), "no main document")
                        )
                        continue
                    main = folder / mains[0]
                    listing.entries.append(
                        DocumentEntry(
                            main.relative_to(self.extended_root),
                            type_folder,
                            standard,
                            date,
                            fields[3],
                            fields[4],
                            fields[5],
                            fields[6],
                            main.stat().st_size,
                        )
                    )
        listing.entries.sort(key=lambda e: (e.timestamp, str(e.path)))
        return listing


def _dirs(path: Path) -> list[str]:
    try:
        return [n for n in os.listdir(path) if (path / n).is_dir()]
    except FileNotFoundError:
        return []
