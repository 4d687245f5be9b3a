"""Entry IDs (property tests: round trip, canonical, junk refused) and the data type → category table."""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.gateway.entries import (
    DATA_TYPES,
    MAX_ENTRY_ID,
    EntryKind,
    EntryRef,
    category_of_data_type,
    document_ref,
    document_ref_of_names,
    hl7_ref,
    hl7_ref_of_name,
    image_ref,
    image_refs,
    parse_entry_id,
)
from simulator.gateway.errors import EntryIdError, UnknownDataTypeError
from synthetic.care import DOCUMENT_CATEGORY, KIND_CATEGORY
from synthetic.documents import DOCUMENT_TYPES
from synthetic.model import ITEM_CATEGORIES
from synthetic.ssmix2.layout import DATA_TYPES as SSMIX2_TYPES
from synthetic.ssmix2.layout import FileName
from synthetic.ssmix2.messages import BUILDERS

SAFE = re.compile(r"[A-Za-z0-9._~-]+")
alnum = st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
pids = st.text(alnum, min_size=6, max_size=15)
digits = st.text(st.sampled_from("0123456789"), min_size=1, max_size=1)
dates = st.text(st.sampled_from("0123456789"), min_size=8, max_size=8)
stamps = st.text(st.sampled_from("0123456789"), min_size=17, max_size=17)
departments = st.one_of(st.just("-"), st.text(st.sampled_from("0123456789ABC"), min_size=2, max_size=3))
flags = st.sampled_from("012")


@st.composite
def hl7_names(draw: st.DrawFn) -> str:
    pid = draw(pids)
    date = draw(st.one_of(st.just("-"), dates))
    order = draw(st.text(alnum, min_size=1, max_size=22))
    fields = (
        pid,
        date,
        draw(st.sampled_from(SSMIX2_TYPES)),
        order,
        draw(stamps),
        draw(departments),
        draw(flags),
    )
    return "_".join(fields)


folder_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\_^"), min_size=1, max_size=12
)


@st.composite
def document_paths(draw: st.DrawFn) -> str:
    pid, date = draw(pids), draw(dates)
    standard = draw(
        st.one_of(st.sampled_from(["18842-5", "57133-1", "11506-3", "34746-8", "99999-9"]), st.just(""))
    )
    local, name = draw(folder_text), draw(folder_text)
    type_folder = "^".join((local, name, "99RHX", standard, draw(folder_text), "LN"))
    key = draw(st.text(alnum, min_size=1, max_size=15))
    content = "_".join(
        (pid, date, f"{local}^{name}^99RHX", key, draw(stamps), draw(departments), draw(flags))
    )
    main = draw(st.sampled_from(["main_document.xml", "main_document.cda.xml", "main_document"]))
    return "/".join((pid[0:3], pid[3:6], pid, date, type_folder, content, main))


@st.composite
def image_args(draw: st.DrawFn) -> tuple[str, str, str, str]:
    arcs = draw(st.lists(st.integers(0, 10**12), min_size=2, max_size=6))
    uid = ".".join(map(str, arcs))[:64].rstrip(".")
    modality = draw(st.sampled_from(["CT", "MR", "CR", "DX", "US", "RF", "XA", "ES", "ECG", "RTIMAGE"]))
    name = f"{draw(st.integers(0, 999)):03d}-{draw(st.integers(0, 9999)):04d}.dcm"
    return draw(pids), modality, uid, name


def check(ref: EntryRef) -> None:
    entry_id = ref.entry_id
    assert SAFE.fullmatch(entry_id)
    assert len(entry_id) <= MAX_ENTRY_ID
    assert parse_entry_id(entry_id) == ref
    assert ref.category in ITEM_CATEGORIES
    assert ref.path.parts[0] not in ("", "/", "..")
    assert ".." not in ref.path.parts


@given(hl7_names())
def test_hl7_ids_round_trip(name: str) -> None:
    ref = hl7_ref(name)
    check(ref)
    pid = name.split("_")[0]
    assert ref.patient == pid
    assert ref.kind == "hl7"
    assert ref.root == "storage"
    assert ref.data_type == name.split("_")[2]
    assert ref.category == category_of_data_type(ref.data_type)
    assert ref.path.as_posix() == f"{pid[:3]}/{pid[3:6]}/{pid}/{name.split('_')[1]}/{ref.data_type}/{name}"


@given(document_paths())
def test_document_ids_round_trip(path: str) -> None:
    length = (
        4 + sum(len(base64.urlsafe_b64encode(p.encode()).rstrip(b"=")) + 1 for p in path.split("/")[4:]) - 1
    )
    if length > MAX_ENTRY_ID:  # base64 of long kanji names may not fit
        with pytest.raises(EntryIdError, match="longer than"):
            document_ref(path)
        return
    ref = document_ref(path)
    check(ref)
    assert ref.path.as_posix() == path
    assert ref.patient == path.split("/")[2]
    assert ref.kind == "document"
    assert ref.root == "extended"
    standard = path.split("/")[4].split("^")[3]
    assert ref.data_type == (standard or path.split("/")[4].split("^")[0])
    expected = {"18842-5": "discharge_summaries", "57133-1": "referral_letters", "11506-3": "progress_notes"}
    expected["34746-8"] = "nursing_notes"
    assert ref.category == expected.get(standard, "other_documents")


@given(image_args())
def test_image_ids_round_trip(args: tuple[str, str, str, str]) -> None:
    ref = image_ref(*args)
    check(ref)
    assert (ref.patient, ref.data_type, ref.study_uid, ref.path.name) == args
    assert ref.category == "images"
    assert ref.root == "images"


@settings(max_examples=400)
@given(st.text(max_size=600))
def test_junk_is_refused_or_canonical(text: str) -> None:
    try:
        ref = parse_entry_id(text)
    except EntryIdError:
        return
    assert ref.entry_id == text


valid_ids = st.one_of(hl7_names().map(lambda n: f"hl7~{n}"), image_args().map(lambda a: "dcm~" + "~".join(a)))
inserts = st.sampled_from(["/", "..", "%2F", "\x00", "~", "=", ".", "\\", "../", "A" * 600])


@settings(max_examples=300)
@given(valid_ids, st.integers(0, 200), inserts)
def test_mutated_ids_are_refused_or_canonical(entry_id: str, at: int, insert: str) -> None:
    at = at % (len(entry_id) + 1)
    mutated = entry_id[:at] + insert + entry_id[at:]
    try:
        ref = parse_entry_id(mutated)
    except EntryIdError:
        return
    assert ref.entry_id == mutated
    assert ".." not in ref.path.parts


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "hl7",
        "hl7~",
        "xyz~abc",
        "hl7~12345_-_ADT-00_999999999999999_20260101000000000_-_1",  # patient ID shorter than 6
        "hl7~1234567_-_ADT-99_999999999999999_20260101000000000_-_1",
        "hl7~1234567_-_ADT-00_999999999999999_20260101000000000_-_1~x",
        "hl7~1234567_-_ADT-00_999999999999999_20260101000000000_-_1/..",
        "cda~" + base64.urlsafe_b64encode(b"..").decode().rstrip("="),
        "cda~Lg~Lg~Lg",
        "cda~YQ==~YQ~YQ",
        "cda~YR~YQ~YQ",  # non-canonical: trailing bits set
        "dcm~1234567~ct~1.2~001-0001.dcm",
        "dcm~1234567~CT~1..2~001-0001.dcm",
        "dcm~1234567~CT~01.2~001-0001.dcm",
        "dcm~1234567~CT~1.2~001-0001.txt",
        "dcm~1234567~CT~1.2~..",
        "dcm~1234567~CT~" + "1." * 40 + "1~001-0001.dcm",
        "hl7~" + "1" * 600,
    ],
)
def test_malformed_ids_raise_a_value_error(bad: str) -> None:
    with pytest.raises(EntryIdError) as caught:
        parse_entry_id(bad)
    assert isinstance(caught.value, ValueError)


def _data_type_of_builder(kind: str) -> str:
    return BUILDERS[kind].__name__.upper().replace("_", "-")  # omp_01 → OMP-01, omd → OMD


def test_category_table_agrees_with_the_world_generator() -> None:
    assert set(DATA_TYPES) == set(SSMIX2_TYPES)
    for kind in BUILDERS:
        data_type = _data_type_of_builder(kind)
        assert data_type in DATA_TYPES, kind
        assert category_of_data_type(data_type) == KIND_CATEGORY[kind], kind
    for kind, (loinc, _name) in DOCUMENT_TYPES.items():
        assert category_of_data_type(loinc) == DOCUMENT_CATEGORY[kind]
        assert category_of_data_type(loinc, "document") == DOCUMENT_CATEGORY[kind]
    assert category_of_data_type("12345-6") == "other_documents"
    assert category_of_data_type("CT") == "images"
    assert category_of_data_type("OMD") == "other"
    assert category_of_data_type("RHDS01", "document") == "other_documents"
    refused: list[tuple[str, EntryKind | None]] = [
        ("ADT-99", None),
        ("omp-01", None),
        ("", None),
        ("CT", "hl7"),
        ("OMP-01", "image"),
    ]
    for bad, entry_kind in refused:
        with pytest.raises(UnknownDataTypeError):
            category_of_data_type(bad, entry_kind)


# -- the listing's shortcuts: the same references and errors as the parsing functions ------------------
def _outcome(make: Callable[[], Any]) -> Any:
    try:
        return make()
    except EntryIdError:
        return "refused"


odd_digits = st.text(st.sampled_from("0123456789٣３"), min_size=17, max_size=17)  # not all [0-9]


@st.composite
def parsed_names(draw: st.DrawFn) -> FileName:
    """Names FileName.parse accepts, now and then given another script's digits afterwards (FileName does
    not validate itself, so the shortcut must refuse what the grammar would have refused)."""
    name = FileName.parse(draw(hl7_names()))
    assert name is not None
    if draw(st.booleans()):
        name = dataclasses.replace(name, timestamp=draw(odd_digits))
    return name


@given(parsed_names())
def test_hl7_ref_of_name_is_hl7_ref_of_the_name(name: FileName) -> None:
    got = _outcome(lambda: hl7_ref_of_name(name))
    assert got == _outcome(lambda: hl7_ref(str(name)))
    if got != "refused":
        check(got)


hostile_names = st.one_of(
    folder_text,
    st.sampled_from([".", "..", "a\x00b", "a\\b", "\udcff", "x" * 300, "漢" * 90, "main_document.xml\n"]),
)


@st.composite
def document_names(draw: st.DrawFn) -> tuple[str, str, str]:
    """(type folder, content folder, main document) of a valid path, or with one name made hostile."""
    parts = draw(document_paths()).split("/")[4:]
    if draw(st.booleans()):
        index = draw(st.integers(0, 2))
        parts[index] = draw(hostile_names)
    return parts[0], parts[1], parts[2]


@settings(max_examples=300)
@given(document_names())
def test_document_ref_of_names_is_document_ref_of_their_path(names: tuple[str, str, str]) -> None:
    type_folder, content, main = names
    fields = content.split("_")
    pid, date = fields[0], fields[1] if len(fields) > 1 else "-"
    path = "/".join((pid[0:3], pid[3:6], pid, date, type_folder, content, main))
    got = _outcome(lambda: document_ref_of_names(type_folder, content, main))
    assert got == _outcome(lambda: document_ref(path))
    if got != "refused":
        check(got)


def test_names_that_are_not_utf8_are_refused_not_crashed() -> None:
    content = "1234567_20260302_X_1_20260302091500000_01_1"
    for bad in ("\udcff", "a\udc80b"):  # what os.listdir gives for undecodable bytes
        with pytest.raises(EntryIdError):
            document_ref_of_names(bad, content, "main_document.xml")
        with pytest.raises(EntryIdError):
            document_ref(f"123/456/1234567/20260302/{bad}/{content}/main_document.xml")


@given(
    image_args(), st.sampled_from(["", "ct", "C", "1.2..3", "01.2", "x-1.dcm", "12345"]), st.integers(0, 3)
)
def test_image_refs_are_image_refs(args: tuple[str, str, str, str], bad: str, spoil: int) -> None:
    pid, modality, uid, name = args
    names = [name, "000-0001.dcm", "999-9999.dcm"]
    fields = [pid, modality, uid]
    if spoil < 3:
        fields[spoil] = bad
    else:
        names.append(bad)
    p, m, u = fields
    expected = _outcome(lambda: [image_ref(p, m, u, n) for n in names])
    assert _outcome(lambda: image_refs(p, m, u, names)) == expected
