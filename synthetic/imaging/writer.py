"""The fast writer: pydicom encodes each element once per layer; a file is the tag-sorted join of bytes."""

from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

from synthetic.imaging.layers import Layer, check_spec, file_meta, instance_layer, series_layer, study_layer
from synthetic.imaging.modules import series_contrast, series_flavour, static_layer
from synthetic.imaging.spec import CHARSET, SOP_CLASSES, StudySpec

Encoded = dict[int, bytes]
_PREAMBLE: Final = b"\x00" * 128 + b"DICM"
_MEDIA_SOP_INSTANCE: Final = struct.pack("<HH", 0x0002, 0x0003)


def _encode(ds: Dataset) -> Encoded:
    """Each element of ``ds`` as Explicit VR Little Endian bytes, in ISO 2022 IR 87 where text needs it."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    ends: list[tuple[int, int]] = []
    for elem in ds:
        write_data_element(fp, elem, CHARSET)
        ends.append((int(elem.tag), fp.tell()))
    data = fp.getvalue()
    out: Encoded = {}
    start = 0
    for tag, end in ends:
        out[tag] = data[start:end]
        start = end
    return out


def _encode_layer(layer: Layer) -> Encoded:
    """Encode each element of a layer; values that recur across studies come from a memo."""
    out: Encoded = {}
    for tag, (vr, value) in layer.items.items():
        if vr in ("UI", "SQ") or isinstance(value, bytes):  # unique, mutable or large: not memoised
            out[tag] = _encode_element(tag, vr, value)
        else:
            out[tag] = _encode_element_memo(tag, vr, tuple(value) if isinstance(value, list) else value)
    return out


def _encode_element(tag: int, vr: str, value: Any) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_data_element(fp, DataElement(tag, vr, list(value) if isinstance(value, tuple) else value), CHARSET)
    return fp.getvalue()


_encode_element_memo = lru_cache(maxsize=16384, typed=True)(_encode_element)


@lru_cache(maxsize=256)
def _static_encoded(modality: str, body_part: str, matrix: int, flavour: int, contrast: bool) -> Encoded:
    return _encode(static_layer(modality, body_part, matrix, flavour, contrast))


@lru_cache(maxsize=16)
def _meta_encoded(sop_class: str) -> tuple[bytes, bytes]:
    """File meta elements before and after (0002,0003) Media Storage SOP Instance UID."""
    parts = _encode(file_meta(sop_class, "1.2"))
    before = b"".join(v for t, v in parts.items() if t < 0x00020003)
    after = b"".join(v for t, v in parts.items() if t > 0x00020003)
    return before, after


def _file_bytes(common: Encoded, instance: Layer, sop_class: str) -> bytes:
    """Preamble, file meta (with its group length) and the dataset: what dcmwrite() would write."""
    encoded = common | _encode_layer(instance)
    if len(encoded) != len(common) + len(instance.items):
        raise AssertionError("instance layer overlaps the series layers")  # a bug in this module
    before, after = _meta_encoded(sop_class)
    # (0002,0003) has the VR, length and value of (0008,0018): reuse its encoding under the other tag
    meta = b"".join([before, _MEDIA_SOP_INSTANCE, encoded[0x00080018][4:], after])
    return b"".join(
        [
            _PREAMBLE,
            struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(meta)),
            meta,
            *(encoded[t] for t in sorted(encoded)),
        ]
    )


def write_study(
    spec: StudySpec, out_dir: Path, *, matrix: int = 64, max_images_per_series: int = 3
) -> list[Path]:
    """Write the study under out_dir/<study_uid>/ as <SeriesNumber:03d>-<InstanceNumber:04d>.dcm.

    Returns the paths in series/instance order. Each file has the bytes that ``dcmwrite(...,
    enforce_file_format=True)`` gives for :func:`instance_dataset`, built from cached per-layer encodings.
    """
    check_spec(spec)
    folder = out_dir / spec.study_uid
    folder.mkdir(parents=True, exist_ok=True)
    count = max(0, min(spec.images_per_series, max_images_per_series))
    sop_class = SOP_CLASSES[spec.modality]
    study = _encode_layer(study_layer(spec))
    paths: list[Path] = []
    for series in range(1, spec.series + 1):
        static = _static_encoded(
            spec.modality, spec.body_part, matrix, series_flavour(spec, series), series_contrast(spec, series)
        )
        own = _encode_layer(series_layer(spec, series))
        common = static | study | own
        if len(common) != len(static) + len(study) + len(own):
            raise AssertionError("static, study and series layers overlap")  # a bug in this module
        for index in range(count):
            path = folder / f"{series:03d}-{index + 1:04d}.dcm"
            path.write_bytes(
                _file_bytes(common, instance_layer(spec, series, index, count, matrix), sop_class)
            )
            paths.append(path)
    return paths
