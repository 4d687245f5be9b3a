"""The study, series and instance layers, the file meta, and the reference dataset of one instance.

A dataset is built in four layers that change at different rates: static (modality, body part, matrix,
series flavour: :mod:`synthetic.imaging.modules`), study, series and instance. Each layer is encoded
element by element (:mod:`synthetic.imaging.writer`).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any, Final

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from synthetic.imaging.modules import (
    code_item,
    da,
    pixel_vr,
    series_contrast,
    series_flavour,
    series_time,
    static_layer,
    tm,
)
from synthetic.imaging.phantoms import FOV, FOV_DEFAULT, pixel_data, slice_z
from synthetic.imaging.spec import (
    CHARSET,
    IMPLEMENTATION_UID,
    IMPLEMENTATION_VERSION,
    MODALITIES,
    SOP_CLASSES,
    StudySpec,
    instance_uid,
)


class Layer:
    """Keyword-style collector of (tag → VR, value), far cheaper than a Dataset for values set once.

    ``layer.PatientID = "123"`` looks the tag and VR up in pydicom's dictionary; ``writer._encode_layer``
    has pydicom encode each element, memoising repeated values (dates, names, institutions).
    """

    __slots__ = ("items",)
    items: dict[int, tuple[str, Any]]

    def __init__(self) -> None:
        object.__setattr__(self, "items", {})

    def __setattr__(self, keyword: str, value: Any) -> None:
        tag, vr = _keyword_tag(keyword)
        self.items[tag] = (vr, value)

    def add_new(self, tag: int, vr: str, value: Any) -> None:
        self.items[tag] = (vr, value)

    def dataset(self) -> Dataset:
        ds = Dataset()
        for tag, (vr, value) in self.items.items():
            ds.add_new(tag, vr, value)
        return ds


@lru_cache(maxsize=256)
def _keyword_tag(keyword: str) -> tuple[int, str]:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise AttributeError(f"{keyword!r} is not a DICOM keyword")
    return tag, dictionary_VR(tag)


def study_layer(spec: StudySpec) -> Layer:
    """Patient and General Study modules, the character set and the institution."""
    ds = Layer()
    ds.SpecificCharacterSet = CHARSET
    ds.StudyDate = da(spec.study_time)
    ds.StudyTime = tm(spec.study_time)
    ds.AccessionNumber = spec.accession
    ds.InstitutionName = spec.institution
    ds.ReferringPhysicianName = spec.referring_physician
    ds.StationName = spec.station
    ds.StudyDescription = spec.description
    ds.PatientName = f"{spec.name_romaji}={spec.name_kanji}={spec.name_kana}"
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = da(spec.birth_date)
    ds.PatientSex = spec.sex
    ds.StudyInstanceUID = spec.study_uid
    ds.StudyID = spec.accession[-16:]
    return ds


def series_layer(spec: StudySpec, series: int) -> Layer:
    ds = Layer()
    start = series_time(spec, series)
    ds.SeriesDate = da(start)
    ds.SeriesTime = tm(start)
    ds.SeriesDescription = f"{spec.modality} {spec.body_part} {series}"
    ds.SeriesInstanceUID = instance_uid(spec.study_uid, "series", series)
    ds.SeriesNumber = series
    if spec.modality in ("CT", "MR"):
        ds.FrameOfReferenceUID = instance_uid(spec.study_uid, "frame", series)
    return ds


# ViewPosition, ViewCodeSequence code (SCT) and PatientOrientation of the frontal and the lateral views.
_FRONTAL_PA: Final = ("PA", ("272479007", "postero-anterior"), ["L", "F"])
_FRONTAL_AP: Final = ("AP", ("399348003", "antero-posterior"), ["L", "F"])
_LATERAL: Final = ("LL", ("49370004", "Lateral"), ["P", "F"])


@lru_cache(maxsize=8)
def _view_code(value: str, meaning: str) -> Sequence:
    """Shared (never mutated) so that its encoding can be memoised too."""
    return Sequence([code_item(value, meaning)])


def instance_layer(spec: StudySpec, series: int, index: int, count: int, matrix: int) -> Layer:
    """What changes per image: UIDs, times, position/view and the pixels."""
    ds = Layer()
    number = index + 1
    when = series_time(spec, series) + dt.timedelta(seconds=2 * number)
    ds.InstanceCreationDate = ds.AcquisitionDate = ds.ContentDate = da(when)
    ds.InstanceCreationTime = ds.AcquisitionTime = ds.ContentTime = tm(when)
    ds.SOPInstanceUID = instance_uid(spec.study_uid, "instance", series, number)
    ds.InstanceNumber = number
    if spec.modality in ("CT", "MR"):
        fov, length = FOV.get(spec.body_part, FOV_DEFAULT)
        z = round(slice_z(index, count) * length / 2.0, 2)
        ds.ImagePositionPatient = [-fov / 2.0, -fov / 2.0, z]
        ds.SliceLocation = z
    elif spec.modality in ("CR", "DX"):  # odd instances are lateral views, like the pixels (正面・側面)
        position, (value, meaning), orientation = (
            _LATERAL if index % 2 else _FRONTAL_PA if spec.body_part == "CHEST" else _FRONTAL_AP
        )
        ds.ViewPosition = position
        ds.PatientOrientation = orientation
        if spec.modality == "DX":
            ds.ViewCodeSequence = _view_code(value, meaning)
    pixels = pixel_data(spec.modality, spec.body_part, matrix, index, count, series_flavour(spec, series))
    ds.add_new(0x7FE00010, pixel_vr(spec.modality), pixels)
    return ds


def file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta


def check_spec(spec: StudySpec, series: int = 1) -> None:
    if spec.modality not in SOP_CLASSES:
        raise ValueError(f"unsupported modality {spec.modality!r} (expected one of {', '.join(MODALITIES)})")
    if not 1 <= series <= spec.series:
        raise ValueError(f"series {series} is outside 1..{spec.series}")


def instance_dataset(
    spec: StudySpec, series: int, number: int, *, matrix: int = 64, max_images_per_series: int = 3
) -> Dataset:
    """The complete dataset (with file meta) of one instance: the reference that write_study() must match.

    write_study() does not call dcmwrite() per file (too slow); the tests write this dataset with
    ``dcmwrite(..., enforce_file_format=True)`` and compare bytes.
    """
    check_spec(spec, series)
    count = min(spec.images_per_series, max_images_per_series)
    if not 1 <= number <= count:
        raise ValueError(f"instance {number} is outside 1..{count}")
    ds = Dataset()
    layers = (
        static_layer(
            spec.modality, spec.body_part, matrix, series_flavour(spec, series), series_contrast(spec, series)
        ),
        study_layer(spec).dataset(),
        series_layer(spec, series).dataset(),
        instance_layer(spec, series, number - 1, count, matrix).dataset(),
    )
    for layer in layers:
        if clash := set(ds.keys()) & set(layer.keys()):
            raise AssertionError(f"layers overlap on {sorted(clash)}")  # a bug in this module
        ds.update(layer)
    ds.file_meta = file_meta(ds.SOPClassUID, ds.SOPInstanceUID)
    return ds
