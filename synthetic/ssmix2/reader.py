"""Reading one facility's SS-MIX2 storage: list a patient's entries, read one, walk an order's history.

Used by the gateways (which serve a facility's storage to the hub) and by tests. It works on anyone's
storage, not only ours, and skips nothing silently: a file whose name does not parse, that sits in the
wrong folder, or that does not decode is returned as a :class:`Problem` beside the entries.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hl7wire import unescape
from synthetic.ssmix2.layout import NO_DATE, FileName, patient_dir


@dataclass(frozen=True, slots=True)
class Entry:
    """One standardized-storage file with the metadata its name and folder carry."""

    relative: str  # its path relative to the storage root, ``/``-separated
    name: FileName
    size: int

    @property
    def path(self) -> Path:
        """:attr:`relative` as a path (made on each access: listing does not pay for it)."""
        return Path(self.relative)

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

    relative: str  # the main document's path relative to the extended-storage root, ``/``-separated
    data_type: str  # the data-type folder name (local^name^system^standard code^name^system)
    standard_code: str  # e.g. LOINC 18842-5
    care_date: str
    key: str
    timestamp: str
    department: str
    flag: str
    size: int

    @property
    def path(self) -> Path:
        """:attr:`relative` as a path (made on each access)."""
        return Path(self.relative)


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path  # relative to the root listed
    reason: str


SYMLINK: Final = "a symbolic link; not followed"
"""The :class:`Problem` reason for a symlink beneath a root, when the reader does not follow them."""


@dataclass(slots=True)
class Listing:
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(slots=True)
class DocumentListing:
    entries: list[DocumentEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A decoded HL7 v2 message: segments split on CR, fields on ``|`` (after decoding, never before)."""

    text: str
    segments: tuple[tuple[str, ...], ...]

    @classmethod
    def decode(cls, data: bytes, encoding: str = "iso2022_jp") -> StoredMessage:
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
    """A facility's standardized storage (and, optionally, its extended storage) on disk.

    With ``follow_symlinks=False`` (what a gateway wants) no symbolic link beneath a root is followed: a
    symlinked patient, date, type or content folder, or a symlinked file, is reported as a :class:`Problem`
    (:data:`SYMLINK`) and nothing behind it is listed. The roots themselves may be symlinks either way. In
    both modes a listed entry is a regular file (anything else with a valid name is a Problem).

    Listing reads the folders afresh on every call (nothing is cached: the storage may change under a
    reader): one ``scandir`` per folder, whose entries say without a system call which are folders (and,
    when not following, which are symlinks), and one ``stat`` per listed file, for its size. The loops
    work on strings; an entry's :class:`~pathlib.Path` is made only when asked for. Problems come sorted
    by path.
    """

    def __init__(
        self, root: Path, extended_root: Path | None = None, *, follow_symlinks: bool = True
    ) -> None:
        self.root = root
        self.extended_root = extended_root
        self.follow_symlinks = follow_symlinks

    def patient_ids(self) -> list[str]:
        ids = []
        root = os.fspath(self.root)
        for first in _dir_names(root):
            for second in _dir_names(f"{root}/{first}"):
                ids.extend(_dir_names(f"{root}/{first}/{second}"))
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
        problems = listing.problems
        root = os.fspath(self.root)
        rel_base = self._patient_base(root, patient_id, problems)
        if rel_base is None:
            return listing
        follow = self.follow_symlinks
        wanted = set(data_types) if data_types is not None else None
        parse = FileName.parse
        found: list[tuple[str, str, FileName, int]] = []
        for date, data_type, rel_type, type_entry in self._type_folders(
            root, rel_base, since, until, wanted, problems
        ):
            for file_entry in _scan(type_entry.path):
                name = file_entry.name
                parsed = parse(name)
                if parsed is None:
                    problems.append(
                        Problem(Path(rel_type, name), "file name does not follow the SS-MIX2 grammar")
                    )
                    continue
                if (
                    parsed.patient_id != patient_id
                    or parsed.care_date != date
                    or parsed.data_type != data_type
                ):
                    problems.append(Problem(Path(rel_type, name), "file name does not match its folder"))
                    continue
                if not history and parsed.flag != "1":
                    continue
                size = _file_size(file_entry, follow, rel_type, problems)
                if size >= 0:
                    found.append((parsed.timestamp, f"{rel_type}/{name}", parsed, size))
        found.sort(key=_first_two)
        listing.entries.extend(Entry(relative, parsed, size) for _ts, relative, parsed, size in found)
        _sort_problems(problems)
        return listing

    def read(self, entry: Entry | Path) -> StoredMessage:
        """Read and decode one entry; a file that does not decode raises ``UnicodeDecodeError``."""
        relative = entry.path if isinstance(entry, Entry) else entry
        return StoredMessage.decode((self.root / relative).read_bytes())

    def read_bytes(self, entry: Entry | Path) -> bytes:
        relative = entry.path if isinstance(entry, Entry) else entry
        return (self.root / relative).read_bytes()

    def history(self, patient_id: str, care_date: str, data_type: str, order_no: str) -> list[Entry]:
        """Every version of one record (same patient, care date, data type and order), oldest first."""
        listing = self.entries(patient_id, data_types=[data_type], history=True)
        return [e for e in listing.entries if e.name.key == (patient_id, care_date, data_type, order_no)]

    def documents(
        self,
        patient_id: str,
        *,
        since: str | None = None,
        until: str | None = None,
        history: bool = False,
    ) -> DocumentListing:
        """The patient's extended-storage documents (main document of each content folder), oldest first.

        ``since``/``until`` are inclusive ``YYYYMMDD`` date folders (``-`` is always listed). Default:
        current versions only (the content folder's flag 1); ``history`` adds the others. The main
        document is the first file of the content folder, by name, whose name starts ``main_document``."""
        listing = DocumentListing()
        if self.extended_root is None:
            return listing
        problems = listing.problems
        root = os.fspath(self.extended_root)
        rel_base = self._patient_base(root, patient_id, problems)
        if rel_base is None:
            return listing
        follow = self.follow_symlinks
        found: list[tuple[str, str, DocumentEntry]] = []
        for date, type_folder, rel_type, type_entry in self._type_folders(
            root, rel_base, since, until, None, problems
        ):
            standard = ""
            for content_entry in _scan(type_entry.path):
                content = content_entry.name
                rel_content = f"{rel_type}/{content}"
                if not _is_dir(content_entry, follow):
                    self._not_folder(content_entry, rel_content, "content", problems)
                    continue
                fields = content.split("_")
                if len(fields) != 7 or fields[0] != patient_id or fields[1] != date:
                    problems.append(
                        Problem(Path(rel_content), "content folder name does not follow the 7-field grammar")
                    )
                    continue
                if not history and fields[6] != "1":
                    continue
                main: os.DirEntry[str] | None = None
                for file_entry in _scan(content_entry.path):
                    if file_entry.name.startswith("main_document") and (
                        main is None or file_entry.name < main.name
                    ):
                        main = file_entry
                if main is None:
                    problems.append(Problem(Path(rel_content), "no main document"))
                    continue
                size = _file_size(main, follow, rel_content, problems)
                if size < 0:
                    continue
                if not standard:
                    parts = type_folder.split("^")
                    standard = parts[3] if len(parts) >= 6 else ""
                relative = f"{rel_content}/{main.name}"
                timestamp = fields[4]
                document = DocumentEntry(
                    relative,
                    type_folder,
                    standard,
                    date,
                    fields[3],
                    timestamp,
                    fields[5],
                    fields[6],
                    size,
                )
                found.append((timestamp, relative, document))
        found.sort(key=_first_two)
        listing.entries.extend(document for _ts, _rel, document in found)
        _sort_problems(problems)
        return listing

    # -- the walk -----------------------------------------------------------------------------------
    def _type_folders(
        self,
        root: str,
        rel_base: str,
        since: str | None,
        until: str | None,
        wanted: set[str] | None,
        problems: list[Problem],
    ) -> Iterator[tuple[str, str, str, os.DirEntry[str]]]:
        """(date, type folder name, its relative path, its entry) under a patient's folder, both storages:
        dates outside ``since``..``until`` (``-`` always in) and types not ``wanted`` skipped, files where
        a folder belongs reported."""
        follow = self.follow_symlinks
        for date_entry in _scan(f"{root}/{rel_base}"):
            date = date_entry.name
            if not _is_dir(date_entry, follow):
                self._not_folder(date_entry, f"{rel_base}/{date}", "date", problems)
                continue
            if date != NO_DATE and ((since and date < since) or (until and date > until)):
                continue
            for type_entry in _scan(date_entry.path):
                name = type_entry.name
                if wanted is not None and name not in wanted:
                    continue
                rel_type = f"{rel_base}/{date}/{name}"
                if not _is_dir(type_entry, follow):
                    self._not_folder(type_entry, rel_type, "type", problems)
                    continue
                yield date, name, rel_type, type_entry

    def _patient_base(self, root: str, patient_id: str, problems: list[Problem]) -> str | None:
        """``pid[0:3]/pid[3:6]/pid`` when that folder exists beneath ``root`` (without a symlink on the way
        when not following them; a symlink there is a Problem), else None."""
        if len(patient_id) < 6:
            patient_dir(Path(root), patient_id)  # raises the layout's ValueError: no folder for such an ID
        parts = (patient_id[0:3], patient_id[3:6], patient_id)
        rel_base = "/".join(parts)
        if self.follow_symlinks:
            return rel_base if os.path.isdir(f"{root}/{rel_base}") else None
        path, rel = root, ""
        for part in parts:
            path, rel = f"{path}/{part}", f"{rel}/{part}" if rel else part
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                return None
            if stat.S_ISLNK(mode):
                problems.append(Problem(Path(rel), SYMLINK))
                return None
            if not stat.S_ISDIR(mode):
                return None
        return rel_base

    def _not_folder(self, entry: os.DirEntry[str], relative: str, what: str, problems: list[Problem]) -> None:
        """Report why ``entry``, where a ``what`` folder belongs, is not descended into."""
        try:
            symlink = not self.follow_symlinks and entry.is_symlink()
        except OSError:
            symlink = False
        reason = SYMLINK if symlink else f"a file where a {what} folder belongs"
        problems.append(Problem(Path(relative), reason))


def _scan(path: str) -> list[os.DirEntry[str]]:
    """The folder's entries, in no particular order; none when it has gone or is not a folder (any other
    error, e.g. a permission denied, is raised)."""
    try:
        with os.scandir(path) as found:
            return list(found)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_dir(entry: os.DirEntry[str], follow: bool) -> bool:
    """Whether ``entry`` is a folder (a symlink to one counts only when following): no system call but
    for a symlink being followed, or where the file system does not give the entry's type."""
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False


def _file_size(entry: os.DirEntry[str], follow: bool, rel_folder: str, problems: list[Problem]) -> int:
    """The size of the regular file ``entry`` (one ``stat``), or -1 with the reason added to ``problems``."""
    try:
        info = entry.stat(follow_symlinks=follow)
    except OSError as exc:
        problems.append(Problem(Path(rel_folder, entry.name), f"unreadable: {exc.strerror}"))
        return -1
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return info.st_size
    reason = SYMLINK if stat.S_ISLNK(mode) else "not a regular file"
    problems.append(Problem(Path(rel_folder, entry.name), reason))
    return -1


def _first_two(item: tuple[str, str, Any, Any] | tuple[str, str, Any]) -> tuple[str, str]:
    return item[0], item[1]


def _sort_problems(problems: list[Problem]) -> None:
    if len(problems) > 1:
        problems.sort(key=lambda p: (p.path.as_posix(), p.reason))


def _dir_names(path: str) -> list[str]:
    """Names of the sub-folders of ``path`` (following symlinks), sorted; none when it does not exist."""
    return sorted(entry.name for entry in _scan(path) if _is_dir(entry, True))
