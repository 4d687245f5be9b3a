"""Entry IDs: what a gateway hands out for each file, decodable by a pure function the hub shares.

An entry ID names exactly one file of one facility and carries, in itself, the patient, the data type and
so the item category: the hub re-checks consent at fetch time from the ID alone, and the gateway rebuilds
the file's relative path from it (never from a client-supplied path). Grammar (``~`` separates fields;
every character is in ``[A-Za-z0-9._~-]``, at most :data:`MAX_ENTRY_ID` characters)::

    hl7~<SS-MIX2 file name>                              standardized storage
        path: <pid[0:3]>/<pid[3:6]>/<pid>/<care date|->/<data type>/<file name>
    cda~<b64 type folder>~<b64 content folder>~<b64 main document name>     extended storage
        path: <pid[0:3]>/<pid[3:6]>/<pid>/<date>/<type folder>/<content folder>/<main document>
        (pid and date come from the content folder's 7 fields)
    dcm~<pid>~<modality>~<StudyInstanceUID>~<series>-<instance>.dcm       the PACS
        path: <StudyInstanceUID>/<series>-<instance>.dcm

``b64`` is unpadded base64url of the UTF-8 name (folder names hold ``^`` and kanji). Every ID has one
canonical spelling: :func:`parse_entry_id` rejects non-canonical base64, so two IDs never name one file.
A document's ``data_type`` is the LOINC code of its type folder (``18842-5``), or the folder's local code
when it has no standard code; an image's is its DICOM modality.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final, Literal

from synthetic.care import DOCUMENT_CATEGORY
from synthetic.documents import DOCUMENT_TYPES
from synthetic.ssmix2.layout import EXTENDED, IMAGES, STORAGE, FileName

from .errors import EntryIdError, UnknownDataTypeError

__all__ = [
    "DATA_TYPES",
    "DOCUMENT_CATEGORIES",
    "MAX_ENTRY_ID",
    "EntryKind",
    "EntryRef",
    "category_of_data_type",
    "document_ref",
    "document_ref_of_names",
    "hl7_ref",
    "hl7_ref_of_name",
    "image_ref",
    "image_refs",
    "parse_entry_id",
]

EntryKind = Literal["hl7", "document", "image"]
MAX_ENTRY_ID: Final = 512
SEP: Final = "~"
PREFIXES: Final[dict[str, EntryKind]] = {"hl7": "hl7", "cda": "document", "dcm": "image"}
PREFIX_OF: Final[dict[EntryKind, str]] = {kind: prefix for prefix, kind in PREFIXES.items()}

#: SS-MIX2 data type → (item category, title). Meanings from docs/ssmix2.md §2 (shortened); the
#: categories are those synthetic.care.KIND_CATEGORY gives the event kinds each type is built from
#: (tests/test_gateway_entries.py checks this against messages.BUILDERS).
DATA_TYPES: Final[Mapping[str, tuple[str, str]]] = {
    "ADT-00": ("patient_basics", "患者基本情報"),
    "ADT-01": ("patient_basics", "担当医の変更"),
    "ADT-12": ("patient_basics", "外来診察の受付"),
    "ADT-21": ("patient_basics", "入院予定"),
    "ADT-22": ("patient_basics", "入院実施"),
    "ADT-31": ("patient_basics", "外出泊実施"),
    "ADT-32": ("patient_basics", "外出泊帰院実施"),
    "ADT-41": ("patient_basics", "転科・転棟予定"),
    "ADT-42": ("patient_basics", "転科・転棟実施"),
    "ADT-51": ("patient_basics", "退院予定"),
    "ADT-52": ("patient_basics", "退院実施"),
    "ADT-61": ("patient_basics", "アレルギー情報"),
    "PPR-01": ("diagnoses", "病名情報"),
    "OMD": ("other", "食事オーダ"),
    "OMP-01": ("prescription_orders", "処方オーダ"),
    "OMP-11": ("prescription_orders", "処方実施通知"),
    "OMP-02": ("injection_orders", "注射オーダ"),
    "OMP-12": ("injection_orders", "注射実施通知"),
    "OML-01": ("lab_orders", "検体検査オーダ"),
    "OML-11": ("lab_results", "検体検査結果通知"),
    "OMG-01": ("radiology_orders", "放射線検査オーダ"),
    "OMG-11": ("radiology_orders", "放射線検査実施通知"),
    "OMG-02": ("endoscopy_orders", "内視鏡検査オーダ"),
    "OMG-12": ("endoscopy_orders", "内視鏡検査実施通知"),
    "OMG-03": ("physiology_results", "生理検査オーダ"),
    "OMG-13": ("physiology_results", "生理検査結果通知"),
}
#: LOINC document type code → item category, from the world's own document tables. Documents of any other
#: type are ``other_documents``.
DOCUMENT_CATEGORIES: Final[Mapping[str, str]] = {
    code: DOCUMENT_CATEGORY[kind] for kind, (code, _name) in DOCUMENT_TYPES.items()
}
OTHER_DOCUMENTS: Final = "other_documents"
IMAGES_CATEGORY: Final = "images"

ID_CHARS = re.compile(r"[A-Za-z0-9._~-]+")
PATIENT_ID = re.compile(r"[0-9A-Za-z]{6,15}")
LOINC_CODE = re.compile(r"[0-9]{1,7}-[0-9]")
MODALITY = re.compile(r"[A-Z][A-Z0-9_]{1,15}")
STUDY_UID = re.compile(r"(?=.{1,64}\Z)(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")
INSTANCE_FILE = re.compile(r"[0-9]{1,8}-[0-9]{1,8}\.dcm")
MAIN_DOCUMENT = re.compile(r"main_document[0-9A-Za-z._-]{0,64}")
DATE = re.compile(r"[0-9]{8}")
TIMESTAMP = re.compile(r"[0-9]{14,17}")
UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True, slots=True)
class EntryRef:
    """What an entry ID says: the file's kind, patient, data type, item category and relative path.

    ``parts`` (and :attr:`path`) are relative to the facility's root for ``kind`` (:attr:`root`:
    ``storage``, ``extended`` or ``images`` inside the world directory, then the facility code); no part
    is empty, ``.`` or ``..``. Build one with :func:`parse_entry_id` or the ``*_ref`` functions, which
    validate; the constructor does not.
    """

    kind: EntryKind
    patient: str
    data_type: str
    category: str
    parts: tuple[str, ...]

    @property
    def path(self) -> PurePosixPath:
        return PurePosixPath(*self.parts)

    @property
    def root(self) -> str:
        return {"hl7": STORAGE, "document": EXTENDED, "image": IMAGES}[self.kind]

    @property
    def entry_id(self) -> str:
        parts = self.parts
        if self.kind == "hl7":
            fields = [parts[-1]]
        elif self.kind == "document":
            fields = [_b64(name) for name in parts[-3:]]
        else:
            fields = [self.patient, self.data_type, parts[0], parts[1]]
        return SEP.join([PREFIX_OF[self.kind], *fields])

    @property
    def study_uid(self) -> str | None:
        return self.parts[0] if self.kind == "image" else None


def category_of_data_type(data_type: str, kind: EntryKind | None = None) -> str:
    """The item category of a data type: SS-MIX2 (``OMP-01``), LOINC document code, or DICOM modality.

    With ``kind`` the answer is exact (an unknown document code is ``other_documents``, every modality is
    ``images``). Without it the SS-MIX2 table is tried first, then LOINC codes, then modality syntax —
    prefer :attr:`EntryRef.category`, which the ID determines. Raises :class:`UnknownDataTypeError`.
    """
    if kind in (None, "hl7") and data_type in DATA_TYPES:
        return DATA_TYPES[data_type][0]
    if kind in (None, "document") and data_type in DOCUMENT_CATEGORIES:
        return DOCUMENT_CATEGORIES[data_type]
    if kind == "document" or (kind is None and LOINC_CODE.fullmatch(data_type)):
        return OTHER_DOCUMENTS
    if kind in (None, "image") and MODALITY.fullmatch(data_type):
        return IMAGES_CATEGORY
    raise UnknownDataTypeError(data_type)


def data_type_title(data_type: str) -> str:
    """A short Japanese title for an SS-MIX2 data type (the type itself when unknown)."""
    return DATA_TYPES[data_type][1] if data_type in DATA_TYPES else data_type


def parse_entry_id(entry_id: str) -> EntryRef:
    """Decode an entry ID (pure; no file is touched). Raises :class:`EntryIdError` on anything malformed."""
    if not isinstance(entry_id, str):
        raise EntryIdError(repr(entry_id), "not a string")
    if len(entry_id) > MAX_ENTRY_ID:
        raise EntryIdError(entry_id, f"longer than {MAX_ENTRY_ID} characters")
    if not ID_CHARS.fullmatch(entry_id):
        raise EntryIdError(entry_id, "characters outside [A-Za-z0-9._~-]")
    prefix, _, rest = entry_id.partition(SEP)
    kind = PREFIXES.get(prefix)
    if kind is None:
        raise EntryIdError(entry_id, f"unknown kind {prefix!r} (hl7, cda or dcm)")
    fields = rest.split(SEP)
    if kind == "hl7":
        ref = _parse_hl7(entry_id, fields)
    elif kind == "document":
        ref = _parse_document(entry_id, fields)
    else:
        ref = _parse_image(entry_id, fields)
    if ref.entry_id != entry_id:  # defensive: every accepted ID is canonical
        raise EntryIdError(entry_id, "not in canonical form")
    return ref


def hl7_ref(file_name: str) -> EntryRef:
    """The reference of a standardized-storage file, from its SS-MIX2 name."""
    return parse_entry_id(SEP.join(("hl7", file_name)))


def document_ref(relative_path: PurePosixPath | str) -> EntryRef:
    """The reference of an extended-storage main document, from its path under the extended root."""
    path = PurePosixPath(relative_path)
    parts = path.parts
    if len(parts) != 7:
        raise EntryIdError(str(path), "a document path has 7 parts (pid folders, date, type, content, main)")
    try:
        fields = [_b64(p) for p in parts[4:]]
    except UnicodeEncodeError:
        raise EntryIdError(str(path), "a name is not valid UTF-8") from None
    ref = parse_entry_id(SEP.join(("cda", *fields)))
    if ref.parts != parts:
        raise EntryIdError(str(path), "folders do not match the content folder's patient and date")
    return ref


def hl7_ref_of_name(name: FileName) -> EntryRef:
    """:func:`hl7_ref` of ``str(name)`` for a name :meth:`FileName.parse` accepted, without parsing it
    again (what listing uses). Same result, same errors."""
    file_name = str(name)
    if not file_name.isascii():  # the grammar's \d also matches other scripts' digits; IDs are ASCII
        raise EntryIdError(f"hl7~{file_name}", "characters outside [A-Za-z0-9._~-]")
    return _hl7(f"hl7~{file_name}", name, file_name)


def document_ref_of_names(type_folder: str, content: str, main: str) -> EntryRef:
    """:func:`document_ref` of ``<pid folders>/<date>/type_folder/content/main`` (the patient folders and
    date taken from ``content``), from the three names, encoding each once (what listing uses). Same
    result, same errors; a name that is not valid UTF-8 (undecodable bytes on disk) is an
    :class:`EntryIdError` too."""
    try:
        fields = [_b64(name) for name in (type_folder, content, main)]
    except UnicodeEncodeError:
        raise EntryIdError(f"{type_folder}/{content}/{main}", "a name is not valid UTF-8") from None
    entry_id = SEP.join(("cda", *fields))
    if len(entry_id) > MAX_ENTRY_ID:
        raise EntryIdError(entry_id, f"longer than {MAX_ENTRY_ID} characters")
    for name in (type_folder, content, main):
        _check_name(entry_id, name)
    return _document(entry_id, type_folder, content, main)


def image_ref(patient: str, modality: str, study_uid: str, file_name: str) -> EntryRef:
    """The reference of one DICOM instance of the PACS (``patient`` is the study's local patient ID)."""
    return parse_entry_id(SEP.join(("dcm", patient, modality, study_uid, file_name)))


def image_refs(patient: str, modality: str, study_uid: str, file_names: Iterable[str]) -> list[EntryRef]:
    """``[image_ref(patient, modality, study_uid, name) for name in file_names]``, checking the study's
    fields once (what listing uses). Same result, same errors."""
    study_id = SEP.join(("dcm", patient, modality, study_uid))
    _check_study(study_id, patient, modality, study_uid)
    return [_image(f"{study_id}{SEP}{name}", patient, modality, study_uid, name) for name in file_names]


def _parse_hl7(entry_id: str, fields: list[str]) -> EntryRef:
    if len(fields) != 1:
        raise EntryIdError(entry_id, "an hl7 ID has one field, the SS-MIX2 file name")
    name = FileName.parse(fields[0])
    if name is None:
        raise EntryIdError(entry_id, "not an SS-MIX2 file name")
    return _hl7(entry_id, name, fields[0])


def _hl7(entry_id: str, name: FileName, file_name: str) -> EntryRef:
    _check_patient(entry_id, name.patient_id)
    pid = name.patient_id
    parts = (pid[0:3], pid[3:6], pid, name.care_date, name.data_type, file_name)
    return EntryRef("hl7", pid, name.data_type, DATA_TYPES[name.data_type][0], parts)


def _parse_document(entry_id: str, fields: list[str]) -> EntryRef:
    if len(fields) != 3:
        raise EntryIdError(entry_id, "a cda ID has three fields: type folder, content folder, main document")
    type_folder, content, main = (_unb64(entry_id, f) for f in fields)
    return _document(entry_id, type_folder, content, main)


def _document(entry_id: str, type_folder: str, content: str, main: str) -> EntryRef:
    if not MAIN_DOCUMENT.fullmatch(main):
        raise EntryIdError(entry_id, "not a main_document file")
    parts = content.split("_")
    if len(parts) != 7:
        raise EntryIdError(entry_id, "content folder does not have 7 fields")
    pid, date, _code, _key, timestamp, _dept, flag = parts
    _check_patient(entry_id, pid)
    if not DATE.fullmatch(date) or not TIMESTAMP.fullmatch(timestamp) or flag not in ("0", "1", "2"):
        raise EntryIdError(entry_id, "content folder date, timestamp or flag is malformed")
    data_type, category = document_type(type_folder)
    path = (pid[0:3], pid[3:6], pid, date, type_folder, content, main)
    return EntryRef("document", pid, data_type, category, path)


def _parse_image(entry_id: str, fields: list[str]) -> EntryRef:
    if len(fields) != 4:
        raise EntryIdError(entry_id, "a dcm ID has four fields: patient, modality, study UID, file")
    pid, modality, study_uid, file_name = fields
    _check_study(entry_id, pid, modality, study_uid)
    return _image(entry_id, pid, modality, study_uid, file_name)


def _check_study(entry_id: str, pid: str, modality: str, study_uid: str) -> None:
    _check_patient(entry_id, pid)
    if not MODALITY.fullmatch(modality):
        raise EntryIdError(entry_id, "not a DICOM modality")
    if not STUDY_UID.fullmatch(study_uid):
        raise EntryIdError(entry_id, "not a DICOM UID")


def _image(entry_id: str, pid: str, modality: str, study_uid: str, file_name: str) -> EntryRef:
    if not INSTANCE_FILE.fullmatch(file_name):
        raise EntryIdError(entry_id, "not a <series>-<instance>.dcm file name")
    return EntryRef("image", pid, modality, IMAGES_CATEGORY, (study_uid, file_name))


#: Data type of an extended-storage MFER waveform (a type folder whose local code starts ``MFER``, as the
#: world writes ``MFER-ECG12^標準12誘導心電図^99RHX``): listed under the physiology category (生理検査).
WAVEFORM_DATA_TYPE: Final = "MFER"
WAVEFORM_CATEGORY: Final = "physiology_results"


def document_type(type_folder: str) -> tuple[str, str]:
    """(data type, category) of an extended-storage type folder ``local^name^sys^standard^name^sys``.

    A folder whose local code starts ``MFER`` holds waveforms: (``MFER``, ``physiology_results``).
    """
    parts = type_folder.split("^")
    if parts[0].startswith(WAVEFORM_DATA_TYPE):
        return WAVEFORM_DATA_TYPE, WAVEFORM_CATEGORY
    standard = parts[3] if len(parts) >= 6 else ""
    if standard:
        return standard, category_of_data_type(standard, "document")
    return parts[0], OTHER_DOCUMENTS


def document_title(type_folder: str) -> str:
    """The type folder's standard name (退院時サマリー), else its local name, else the folder itself."""
    parts = type_folder.split("^")
    for index in (4, 1):
        if len(parts) > index and parts[index]:
            return parts[index]
    return type_folder


def _check_patient(entry_id: str, pid: str) -> None:
    if not PATIENT_ID.fullmatch(pid):
        raise EntryIdError(entry_id, "local patient ID is not 6-15 letters and digits")


@functools.lru_cache(maxsize=4096)
def _b64(name: str) -> str:
    """Unpadded base64url of the UTF-8 name (memoized: listings encode the same type folders and main
    document names over and over, and an ID's fields once to build it and again in ``entry_id``)."""
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")


def _unb64(entry_id: str, field: str) -> str:
    if not field or "=" in field or len(field) % 4 == 1:
        raise EntryIdError(entry_id, "a field is not unpadded base64url")
    try:
        raw = base64.b64decode(field + "=" * (-len(field) % 4), altchars=b"-_", validate=True)
        name = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise EntryIdError(entry_id, f"a field does not decode ({exc})") from None
    if _b64(name) != field:
        raise EntryIdError(entry_id, "a field is not canonical base64url")
    _check_name(entry_id, name, len(raw))
    return name


def _check_name(entry_id: str, name: str, size: int | None = None) -> None:
    """A folder or file name may be used as one path part (``size``: its UTF-8 length, if known)."""
    if size is None:
        size = len(name) if name.isascii() else len(name.encode("utf-8"))
    if name in (".", "..") or size > 255 or UNSAFE_NAME.search(name):
        raise EntryIdError(entry_id, "a folder or file name is unsafe")
