"""DICOM writer: every IOD passes dciodvfy, Japanese names survive ISO 2022, output is byte-deterministic."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.filewriter import dcmwrite

from synthetic.imaging import MODALITIES, SOP_CLASSES, StudySpec, instance_dataset, write_study
from tests.dicom_check import backslash_only_inside_jis, dciodvfy, real_errors

# dciodvfy names the IOD it recognised on its first line.
IODS = {
    "CT": "CTImage",
    "MR": "MRImage",
    "CR": "CRImage",
    "DX": "DXImageForPresentation",
    "US": "USImage",
    "RF": "XRFImage",
    "XA": "XAImage",
    "ES": "VLEndoscopicImage",
}
BODY_PARTS = {
    "CT": "ABDOMEN",
    "MR": "HEAD",
    "CR": "HIP",
    "DX": "CHEST",
    "US": "NECK",
    "RF": "NECK",
    "XA": "HEART",
    "ES": "STOMACH",
}
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")

SPEC = StudySpec(
    study_uid="2.25.1254920338781756260204340018470560333",
    accession="2024050600123",
    modality="CT",
    body_part="ABDOMEN",
    description="腹部ＣＴ（造影・３相）",
    study_time=dt.datetime(2024, 5, 6, 9, 30, 15),
    series=2,
    images_per_series=24,
    patient_id="00012345",
    name_romaji="Yamada^Taro",
    name_kanji="山田^太郎",
    name_kana="ヤマダ^タロウ",
    birth_date=dt.date(1950, 1, 2),
    sex="M",
    institution="金沢市立病院",
    referring_physician="Sato^Hanako=佐藤^花子=サトウ^ハナコ",
)


def spec_for(modality: str, **changes: object) -> StudySpec:
    return dataclasses.replace(SPEC, modality=modality, body_part=BODY_PARTS[modality], **changes)  # type: ignore[arg-type]


def write(spec: StudySpec, out: Path, **kwargs: int) -> list[Path]:
    """Write with every warning an error: a name pydicom cannot encode must fail, not turn into '?'."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return write_study(spec, out, **kwargs)


def errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(("Error", "Abort"))]


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    out = tmp_path_factory.mktemp("dicom")
    return {m: write(spec_for(m, study_uid=f"{SPEC.study_uid}{i}"), out) for i, m in enumerate(MODALITIES)}


@pytest.mark.parametrize("modality", MODALITIES)
def test_every_file_passes_dciodvfy(studies: dict[str, list[Path]], modality: str) -> None:
    for path in studies[modality]:
        code, lines = dciodvfy(path)
        assert lines, f"dciodvfy printed nothing for {path}"
        assert lines[0] == IODS[modality], lines
        assert not real_errors(path, lines), "\n".join(lines)
        assert code == 0 or errors(lines), "\n".join(lines)


@pytest.mark.parametrize("keyword", ["PatientName", "Rows", "SOPInstanceUID"])
def test_dciodvfy_reports_a_broken_file(studies: dict[str, list[Path]], tmp_path: Path, keyword: str) -> None:
    """The check above can fail: remove a Type 2 / Type 1 attribute and dciodvfy must say Error."""
    ds = pydicom.dcmread(studies["CT"][0])
    delattr(ds, keyword)
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken, enforce_file_format=True)
    code, lines = dciodvfy(broken)
    assert any(keyword in line for line in errors(lines)), lines
    assert code != 0


@pytest.mark.parametrize("modality", MODALITIES)
def test_files_are_what_dcmwrite_writes(studies: dict[str, list[Path]], modality: str) -> None:
    """The cached-layer writer is byte-identical to pydicom's dcmwrite(enforce_file_format=True)."""
    spec = spec_for(modality, study_uid=f"{SPEC.study_uid}{MODALITIES.index(modality)}")
    for path in studies[modality]:
        series, number = map(int, path.stem.split("-"))
        buffer = io.BytesIO()
        dcmwrite(buffer, instance_dataset(spec, series, number), enforce_file_format=True)
        assert path.read_bytes() == buffer.getvalue(), path.name


def test_japanese_person_name_round_trip(studies: dict[str, list[Path]]) -> None:
    ds = pydicom.dcmread(studies["CT"][0])
    assert ds.SpecificCharacterSet == ["", "ISO 2022 IR 87"]
    assert ds.PatientName.alphabetic == SPEC.name_romaji
    assert ds.PatientName.ideographic == SPEC.name_kanji
    assert ds.PatientName.phonetic == SPEC.name_kana
    assert str(ds.ReferringPhysicianName) == SPEC.referring_physician
    assert ds.StudyDescription == SPEC.description
    assert ds.InstitutionName == SPEC.institution


def jis(text: str) -> bytes:
    """JIS X 0208 in ISO 2022: ESC $ B, the characters, ESC ( B."""
    encoded = text.encode("iso2022_jp")
    assert encoded.startswith(b"\x1b$B")
    assert encoded.endswith(b"\x1b(B")
    return encoded


def test_person_name_bytes_switch_back_to_ascii_before_delimiters(studies: dict[str, list[Path]]) -> None:
    """PS3.5 6.1.2.5.3: each ^ and = is preceded by ESC ( B when the component before it is in JIS."""
    raw = studies["CT"][0].read_bytes()
    expected = b"".join(
        [b"Yamada^Taro=", jis("山田"), b"^", jis("太郎"), b"=", jis("ヤマダ"), b"^", jis("タロウ")]
    )
    expected += b" " * (len(expected) % 2)
    tag = b"\x10\x00\x10\x00PN" + len(expected).to_bytes(2, "little")
    assert tag + expected in raw
    assert delimiters(expected) == "^=^=^"


def delimiters(value: bytes) -> str:
    """The ^ and = an ISO 2022 decoder sees: in JIS mode those bytes are halves of 2-byte characters."""
    found, jis_mode, i = [], False, 0
    while i < len(value):
        if value.startswith((b"\x1b$B", b"\x1b(B"), i):
            jis_mode = value[i + 1] == ord("$")
            i += 3
        elif jis_mode:
            i += 2
        else:
            found += [chr(value[i])] if value[i] in b"^=" else []
            i += 1
    return "".join(found)


def test_delimiter_check_catches_a_missing_switch_back() -> None:
    """Without ESC ( B, the ^ after ヤマダ is read as part of a JIS character (マ is 0x25 0x5E too)."""
    bad = b"Yamada^Taro=" + "山田".encode("iso2022_jp")[:-3] + b"^" + jis("太郎")
    assert delimiters(bad) != "^=^"


def test_unencodable_name_fails_under_warnings_as_errors(tmp_path: Path) -> None:
    """髙 (hashigo-daka) is outside JIS X 0208: pydicom would write '?'; the warning must surface."""
    with pytest.raises(UserWarning):
        write(dataclasses.replace(SPEC, name_kanji="髙橋^一郎"), tmp_path)


def uids(paths: list[Path]) -> Iterator[tuple[str, str]]:
    for path in paths:
        ds = pydicom.dcmread(path)
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            if keyword in ds:
                yield keyword, str(ds[keyword].value)
        yield "MediaStorageSOPInstanceUID", str(ds.file_meta.MediaStorageSOPInstanceUID)
        yield "ImplementationClassUID", str(ds.file_meta.ImplementationClassUID)


def test_same_spec_same_bytes(tmp_path: Path) -> None:
    for modality in MODALITIES:
        first = write(spec_for(modality), tmp_path / "a")
        second = write(spec_for(modality), tmp_path / "b")
        assert [p.relative_to(tmp_path / "a") for p in first] == [
            p.relative_to(tmp_path / "b") for p in second
        ]
        assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second], modality


def test_uids_are_valid_stable_and_specific_to_the_study(tmp_path: Path) -> None:
    one = write(SPEC, tmp_path)
    other = write(dataclasses.replace(SPEC, study_uid="2.25.99"), tmp_path)
    found = list(uids(one))
    for _, uid in found:
        assert len(uid) <= 64, uid
        assert UID_RE.match(uid), uid
    assert {uid for key, uid in found if key == "StudyInstanceUID"} == {SPEC.study_uid}
    for keyword in ("SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        mine = {uid for key, uid in found if key == keyword}
        theirs = {uid for key, uid in uids(other) if key == keyword}
        assert mine, keyword
        assert theirs, keyword
        assert not mine & theirs, keyword
    sops = [uid for key, uid in found if key == "SOPInstanceUID"]
    assert len(set(sops)) == len(sops) == len(one)
    assert sops == [uid for key, uid in found if key == "MediaStorageSOPInstanceUID"]


@pytest.mark.parametrize(("images", "cap", "series"), [(24, 3, 2), (1, 3, 3), (2, 5, 1)])
def test_file_count_and_names(tmp_path: Path, images: int, cap: int, series: int) -> None:
    spec = dataclasses.replace(SPEC, images_per_series=images, series=series)
    paths = write(spec, tmp_path, max_images_per_series=cap)
    per_series = min(images, cap)
    assert len(paths) == per_series * series
    assert [p.name for p in paths] == [
        f"{s:03d}-{i:04d}.dcm" for s in range(1, series + 1) for i in range(1, per_series + 1)
    ]
    assert {p.parent for p in paths} == {tmp_path / SPEC.study_uid}


@pytest.mark.parametrize("modality", MODALITIES)
def test_pixel_data(tmp_path: Path, modality: str) -> None:
    paths = write(spec_for(modality, series=1), tmp_path, matrix=32)
    images = []
    for number, path in enumerate(paths, start=1):
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == SOP_CLASSES[modality]
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert (ds.Rows, ds.Columns) == (32, 32)
        assert ds.InstanceNumber == number
        arr = ds.pixel_array
        assert arr.shape == ((32, 32, 3) if modality == "ES" else (32, 32))
        assert arr.max() > arr.min(), "a blank image"
        assert int(arr.max()) < 2 ** int(ds.BitsStored)
        images.append(arr)
    assert len(images) == 3
    assert len({a.tobytes() for a in images}) > 1, "instances should show different views/sections"


def test_ct_is_in_hounsfield_units_and_slices_are_consistent(studies: dict[str, list[Path]]) -> None:
    datasets = [pydicom.dcmread(p) for p in studies["CT"] if p.name.startswith("001-")]
    for ds in datasets:
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
        assert (ds.RescaleIntercept, ds.RescaleSlope) == (-1024, 1)
        hu = ds.pixel_array.astype(int) + int(ds.RescaleIntercept)
        assert hu[0, 0] == -1000  # air outside the body
        assert -100 < hu[32, 32] < 300  # soft tissue in the middle (not bone: the spine is posterior)
        assert float(ds.ImagePositionPatient[2]) == float(ds.SliceLocation)
    zs = [float(ds.SliceLocation) for ds in datasets]
    assert zs == sorted(zs)
    assert len(set(zs)) == len(zs)
    assert len({ds.FrameOfReferenceUID for ds in datasets}) == 1


def test_unknown_modality_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="modality"):
        write_study(dataclasses.replace(SPEC, modality="PT"), tmp_path)


def test_japanese_names_that_trip_dciodvfy_are_conformant(tmp_path: Path) -> None:
    """山本 (本 = JIS 0x4B5C) and a long three-group name: dciodvfy's two known false positives, verified."""
    spec = dataclasses.replace(
        SPEC,
        study_uid=f"{SPEC.study_uid}77",
        name_romaji="Yamamoto^Hanako",
        name_kanji="山本^花子",
        name_kana="ヤマモト^ハナコ",
    )
    path = write(spec, tmp_path)[0]
    _, lines = dciodvfy(path)
    assert any("Value Multiplicity" in line for line in errors(lines)), "dciodvfy's 0x5C false positive shows"
    assert real_errors(path, lines) == [], lines
    name = pydicom.dcmread(path).PatientName
    assert (name.ideographic, name.phonetic) == ("山本^花子", "ヤマモト^ハナコ")
    long = dataclasses.replace(
        SPEC,
        study_uid=f"{SPEC.study_uid}78",
        name_romaji="Kobayashi^Satoshi",
        name_kanji="小林^聡",
        name_kana="コバヤシ^サトシ",
    )
    path = write(long, tmp_path)[0]
    _, lines = dciodvfy(path)
    assert any("Length invalid" in line for line in errors(lines)), (
        "dciodvfy's byte-length false positive shows"
    )
    assert real_errors(path, lines) == [], lines


def test_a_real_backslash_delimiter_is_still_an_error(tmp_path: Path) -> None:
    """The filter keeps a genuine second value: a 0x5C outside JIS mode."""
    path = write(dataclasses.replace(SPEC, study_uid=f"{SPEC.study_uid}79"), tmp_path)[0]
    ds = pydicom.dcmread(path)
    ds.PatientName = "Yamada^Taro\\Suzuki^Jiro"
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken, enforce_file_format=True)
    _, lines = dciodvfy(broken)
    assert real_errors(broken, lines), lines
    assert not backslash_only_inside_jis(b"Yamada^Taro\\Suzuki")
    assert backslash_only_inside_jis(b"\x1b$BK\\\x1b(B")
