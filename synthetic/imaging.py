"""Small, valid, deterministic DICOM studies for the synthetic world's imaging orders.

One IOD per modality (CT, MR, CR, DX, US, RF, XA, ES) with every mandatory module, Japanese names in
``ISO 2022 IR 87`` and phantom-like pixel data. Same spec → byte-identical files: UIDs are name-based
(UUID v5 under ``2.25``), times come from the study time and pixels from analytic ellipsoids.

Speed matters (≈250,000 instances at full scale): each series' dataset is built once and only the
per-instance attributes and pixel data change between writes; pixel buffers are memoised because many
studies share modality, body part and slice position.
"""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

__all__ = ["MODALITIES", "SOP_CLASSES", "StudySpec", "instance_dataset", "instance_uid", "write_study"]

Float2D = npt.NDArray[np.float64]

SOP_CLASSES: Final[dict[str, str]] = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "US": "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "RF": "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic Image Storage
    "XA": "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image Storage
    "ES": "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL Endoscopic Image Storage
}
MODALITIES: Final[tuple[str, ...]] = tuple(SOP_CLASSES)

# Two values: the first (empty = ISO-IR 6) keeps ASCII and the component delimiters in G0; a single
# 'ISO 2022 IR 87' value makes pydicom encode without the mandatory switches back to ASCII.
CHARSET: Final[list[str]] = ["", "ISO 2022 IR 87"]
_UID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://rhin.invalid/dicom")
IMPLEMENTATION_UID: Final[str] = f"2.25.{uuid.uuid5(_UID_NAMESPACE, 'implementation').int}"
IMPLEMENTATION_VERSION: Final[str] = "RHIN_0_1"
MANUFACTURER: Final[str] = "RHIN Synthetic"


@dataclass(frozen=True, slots=True)
class StudySpec:
    """One imaging study as the world knows it; everything a file needs and nothing random."""

    study_uid: str
    accession: str
    modality: str
    body_part: str
    description: str
    study_time: dt.datetime
    series: int
    images_per_series: int
    patient_id: str
    name_romaji: str
    name_kanji: str
    name_kana: str
    birth_date: dt.date
    sex: str
    institution: str
    referring_physician: str
    station: str = "RHIN01"


def instance_uid(study_uid: str, *part: object) -> str:
    """A stable ``2.25`` UID (≤ 44 chars) for a study's series/instance/frame of reference."""
    name = "/".join([study_uid, *map(str, part)])
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


# ---------------------------------------------------------------------------------------------------------
# Phantoms: axis-aligned ellipsoids (cx, cy, cz, a, b, c, delta density) in a [-1, 1]³ box, LPS axes
# (x → patient left, y → posterior, z → head). Densities add up Shepp-Logan style: water ≈ 1, air 0, bone 2.

Ellipsoid = tuple[float, float, float, float, float, float, float]
_TRUNK: Final[Ellipsoid] = (0.0, 0.0, 0.0, 0.88, 0.6, 1.2, 1.02)
_SPINE: Final[Ellipsoid] = (0.0, 0.42, 0.0, 0.1, 0.1, 1.3, 0.9)
_CHEST: Final[tuple[Ellipsoid, ...]] = (
    _TRUNK,
    (-0.42, -0.02, 0.1, 0.32, 0.42, 0.85, -0.82),  # right lung
    (0.42, -0.02, 0.1, 0.3, 0.42, 0.85, -0.82),  # left lung
    (0.12, -0.08, -0.25, 0.26, 0.22, 0.35, 0.84),  # heart (back to soft tissue inside the lung)
    (0.1, 0.25, 0.2, 0.06, 0.06, 0.9, 0.03),  # descending aorta
    _SPINE,
    (0.0, -0.5, 0.0, 0.06, 0.05, 1.1, 0.9),  # sternum
)
PHANTOMS: Final[dict[str, tuple[Ellipsoid, ...]]] = {
    "HEAD": (
        (0.0, 0.0, 0.0, 0.72, 0.9, 0.95, 2.0),  # skull
        (0.0, 0.0, 0.0, 0.67, 0.85, 0.9, -0.97),  # brain
        (-0.12, -0.05, 0.1, 0.07, 0.28, 0.25, -0.03),  # lateral ventricles
        (0.12, -0.05, 0.1, 0.07, 0.28, 0.25, -0.03),
        (0.0, 0.05, -0.35, 0.2, 0.2, 0.25, 0.01),  # brain stem / cerebellum
        (0.25, -0.35, 0.25, 0.09, 0.09, 0.1, 0.015),  # a lesion
    ),
    "NECK": (
        (0.0, 0.0, 0.0, 0.55, 0.5, 1.3, 1.02),
        (0.0, -0.22, 0.0, 0.09, 0.08, 1.3, -1.02),  # trachea
        (0.0, 0.22, 0.0, 0.18, 0.16, 1.3, 0.8),  # cervical spine
        (-0.28, -0.08, 0.0, 0.06, 0.06, 1.3, 0.03),  # carotids
        (0.28, -0.08, 0.0, 0.06, 0.06, 1.3, 0.03),
        (0.0, -0.34, -0.3, 0.25, 0.08, 0.25, 0.05),  # thyroid
        (0.0, -0.04, 0.0, 0.05, 0.04, 1.3, -0.5),  # oesophagus
    ),
    "CHEST": _CHEST,
    "HEART": _CHEST,
    "ABDOMEN": (
        _TRUNK,
        (-0.38, -0.05, 0.3, 0.38, 0.32, 0.5, 0.04),  # liver
        (0.5, 0.2, 0.4, 0.16, 0.14, 0.25, 0.03),  # spleen
        (-0.32, 0.3, -0.1, 0.12, 0.14, 0.3, 0.01),  # kidneys
        (0.32, 0.3, -0.1, 0.12, 0.14, 0.3, 0.01),
        (0.08, 0.22, 0.0, 0.06, 0.06, 1.2, 0.03),  # aorta
        (0.2, -0.25, -0.3, 0.18, 0.12, 0.3, -0.9),  # bowel gas
        _SPINE,
    ),
    "HIP": (
        (0.0, 0.0, 0.0, 0.92, 0.6, 1.2, 1.02),
        (-0.5, 0.05, 0.5, 0.25, 0.3, 0.45, 0.9),  # iliac wings
        (0.5, 0.05, 0.5, 0.25, 0.3, 0.45, 0.9),
        (-0.48, 0.0, -0.1, 0.14, 0.14, 0.14, 0.95),  # femoral heads
        (0.48, 0.0, -0.1, 0.14, 0.14, 0.14, 0.95),
        (-0.58, 0.0, -0.7, 0.1, 0.1, 0.6, 0.9),  # femoral shafts
        (0.58, 0.0, -0.7, 0.1, 0.1, 0.6, 0.9),
        (0.0, -0.25, -0.25, 0.2, 0.15, 0.2, -0.01),  # bladder
        (0.0, 0.4, 0.4, 0.12, 0.1, 0.4, 0.9),  # sacrum
    ),
    "LSPINE": (
        _TRUNK,
        *((0.0, 0.35, z, 0.16, 0.14, 0.13, 0.9) for z in (-0.72, -0.36, 0.0, 0.36, 0.72)),  # vertebrae
        *(
            (s * 0.12, 0.52, z, 0.05, 0.1, 0.08, 0.9)
            for s in (-1, 1)
            for z in (-0.72, -0.36, 0.0, 0.36, 0.72)
        ),
    ),
}
for _part, _same in {"LARYNX": "NECK", "CSPINE": "NECK", "STOMACH": "ABDOMEN", "COLON": "ABDOMEN"}.items():
    PHANTOMS[_part] = PHANTOMS[_same]

# Field of view (mm) and scan length (mm) per body part: a head is smaller than a trunk.
_FOV: Final[dict[str, tuple[float, float]]] = {"HEAD": (240.0, 180.0), "NECK": (200.0, 160.0)}
_FOV_DEFAULT: Final = (400.0, 360.0)

# SNOMED CT anatomy codes (PS3.16 CID 4031 / Annex L, as in pydicom's codedict) for Anatomic Region Sequence.
ANATOMY: Final[dict[str, tuple[str, str]]] = {
    "HEAD": ("69536005", "Head"),
    "NECK": ("45048000", "Neck"),
    "CHEST": ("816094009", "Chest"),
    "HEART": ("80891009", "Heart"),
    "ABDOMEN": ("818981001", "Abdomen"),
    "HIP": ("24136001", "Hip joint"),
    "LSPINE": ("122496007", "Lumbar spine"),
    "CSPINE": ("122494005", "Cervical spine"),
    "STOMACH": ("69695003", "Stomach"),
    "COLON": ("71854001", "Colon"),
    "LARYNX": ("4596009", "Larynx"),
}
_PAIRED: Final = frozenset({"HIP", "KNEE", "SHOULDER", "ELBOW", "HAND", "FOOT", "BREAST", "ANKLE", "WRIST"})


def _phantom(body_part: str) -> tuple[Ellipsoid, ...]:
    return PHANTOMS.get(body_part, _CHEST)


@lru_cache(maxsize=8)
def _grid(matrix: int) -> tuple[Float2D, Float2D]:
    """Pixel-centre coordinates in [-1, 1]: (row-axis, column-axis) meshes."""
    axis = (np.arange(matrix, dtype=np.float64) + 0.5) / matrix * 2.0 - 1.0
    rows, cols = np.meshgrid(axis, axis, indexing="ij")
    return rows, cols


def _section(body_part: str, z: float, matrix: int) -> Float2D:
    """Density of the axial cross-section at height z (rows → posterior, columns → patient left)."""
    ys, xs = _grid(matrix)
    out = np.zeros((matrix, matrix))
    for cx, cy, cz, a, b, c, d in _phantom(body_part):
        k = 1.0 - ((z - cz) / c) ** 2
        if k <= 0.0:
            continue
        out += d * ((((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2) <= k)
    return out


def _projection(body_part: str, lateral: bool, bolus_z: float | None, matrix: int) -> Float2D:
    """Line integral of density through the phantom: AP (along y) or lateral (along x) radiograph.

    Rows run head → feet; columns run towards the patient's left (AP) or posterior (lateral).
    """
    rows, cols = _grid(matrix)
    zs = -rows
    out = np.zeros((matrix, matrix))
    bodies = list(_phantom(body_part))
    if bolus_z is not None:  # swallowed/injected contrast: a dense blob moving down the midline
        bodies.append((0.0, 0.0, bolus_z, 0.08, 0.08, 0.12, 2.5))
    for cx, cy, cz, a, b, c, d in bodies:
        across, depth, centre = (b, a, cy) if lateral else (a, b, cx)
        q = 1.0 - ((cols - centre) / across) ** 2 - ((zs - cz) / c) ** 2
        out += d * 2.0 * depth * np.sqrt(np.clip(q, 0.0, None))
    return out


def _slice_z(index: int, count: int) -> float:
    """Spread the written instances over the scanned range so each shows another cross-section."""
    return 0.0 if count <= 1 else -0.55 + 1.1 * index / (count - 1)


@lru_cache(maxsize=512)  # ≈4 MB at matrix 64; keys repeat (modality, body part, slice slot)
def _pixels(modality: str, body_part: str, matrix: int, index: int, count: int, variant: int) -> bytes:
    """Pixel data of one instance (memoised: studies repeat modality, body part and slice positions)."""
    arr: npt.NDArray[np.generic]
    if modality == "CT":
        hu = (_section(body_part, _slice_z(index, count), matrix) - 1.0) * 1000.0
        arr = np.clip(np.rint(hu) + 1024.0, 0, 4095).astype(np.uint16)
    elif modality == "MR":
        d = _section(body_part, _slice_z(index, count), matrix)
        tissue = (d > 0.5) & (d < 1.5)
        signal = np.where(tissue, 600.0 + (d - 1.0) * 9000.0, np.where(d >= 1.5, 120.0, 0.0))
        if variant == 0:  # T2-like series: fluid bright
            signal = np.where(tissue, 1500.0 - signal, signal)
        arr = np.clip(np.rint(signal), 0, 4095).astype(np.uint16)
    elif modality in ("CR", "DX", "RF", "XA"):
        bolus = 0.6 - 1.2 * index / max(count - 1, 1) if modality in ("RF", "XA") else None
        lateral = modality == "RF" or (modality != "XA" and index % 2 == 1)
        proj = _projection(body_part, lateral, bolus, matrix)
        arr = np.clip(np.rint(200.0 + proj * 1200.0), 0, 4095).astype(np.uint16)
    elif modality == "US":
        arr = _ultrasound(body_part, index, count, matrix)
    elif modality == "ES":
        arr = _endoscopy(index, count, matrix)
    else:
        raise ValueError(f"unsupported modality {modality!r}")
    return arr.tobytes()


def _ultrasound(body_part: str, index: int, count: int, matrix: int) -> npt.NDArray[np.uint8]:
    """A B-mode sector: echogenicity from a cross-section, speckle from a seeded generator."""
    rows, cols = _grid(matrix)
    depth = (rows + 1.0) / 2.0
    angle = np.arctan2(cols, depth + 0.05)
    sector = (np.abs(angle) < 0.6) & (depth > 0.04) & (depth < 0.97)
    d = _section(body_part, _slice_z(index, count) * 0.5, matrix)
    echo = np.where(d < 0.5, 10.0, np.where(d > 1.5, 230.0, 140.0 + (d - 1.02) * 2500.0))
    echo = np.where(np.abs(d - 1.0) < 0.025, 15.0, echo)  # fluid is anechoic
    seed = int.from_bytes(uuid.uuid5(_UID_NAMESPACE, f"us/{body_part}/{index}/{count}").bytes[:8], "big")
    speckle = np.random.default_rng(seed).rayleigh(0.6, size=(matrix, matrix))
    img = np.where(sector, np.clip(echo * speckle * (1.1 - 0.5 * depth), 0, 255), 0.0)
    return np.rint(img).astype(np.uint8)


def _endoscopy(index: int, count: int, matrix: int) -> npt.NDArray[np.uint8]:
    """A pink mucosa with a dark lumen wandering across the frame (RGB, rows × cols × 3)."""
    rows, cols = _grid(matrix)
    t = index / max(count, 1) * 2.0 * np.pi
    lx, ly = 0.35 * np.cos(t), 0.3 * np.sin(t)
    r = np.hypot(cols - lx, rows - ly)
    light = np.clip(1.15 - 0.6 * np.hypot(cols, rows), 0.0, 1.0)
    folds = 0.85 + 0.15 * np.cos(r * 18.0)
    lumen = np.clip(r / 0.35, 0.0, 1.0) ** 1.5
    shade = light * folds * lumen
    rgb = np.stack([225.0 * shade, 120.0 * shade, 110.0 * shade], axis=-1)
    mask = np.hypot(cols, rows) <= 1.0  # the round endoscope field
    out: npt.NDArray[np.uint8] = np.rint(rgb * mask[..., None]).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------------------------
# Datasets, in four layers that change at different rates: static (modality, body part, matrix, series
# flavour), study, series and instance. Each layer is a pydicom Dataset, encoded element by element.


def _da(t: dt.datetime | dt.date) -> str:
    return t.strftime("%Y%m%d")


def _tm(t: dt.datetime) -> str:
    return t.strftime("%H%M%S")


def _code(value: str, meaning: str, scheme: str = "SCT") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _anatomy(body_part: str) -> Sequence:
    value, meaning = ANATOMY.get(body_part, ANATOMY["CHEST"])
    return Sequence([_code(value, meaning)])


def _series_time(spec: StudySpec, series: int) -> dt.datetime:
    """Series start a few minutes apart: deterministic, plausible, after the study time."""
    return spec.study_time + dt.timedelta(minutes=2 * (series - 1), seconds=30)


def _contrast(spec: StudySpec, series: int) -> bool:
    """Contrast studies (造影): the first series of a multi-phase study is the plain one."""
    return "造影" in spec.description and (spec.series == 1 or series > 1)


_MR_SEQUENCES: Final = (
    # (ScanningSequence, SequenceVariant, TR, TE, TI, SequenceName); the pixels of flavour 0 are T2-like
    ("SE", "SK", 4000.0, 90.0, None, "T2 TSE"),
    ("SE", "SK", 500.0, 12.0, None, "T1 SE"),
    (["SE", "IR"], ["SK", "MP"], 9000.0, 100.0, 2500.0, "FLAIR"),
    ("GR", "SP", 5.0, 2.0, None, "T1 GRE"),
)


def _flavour(spec: StudySpec, series: int) -> int:
    """Which variant of the static layer a series uses (MR: its pulse sequence)."""
    return (series - 1) % len(_MR_SEQUENCES) if spec.modality == "MR" else 0


def _cross_sectional(ds: Dataset, body_part: str, matrix: int) -> None:
    """Image Plane module and patient position; the slice position is set per instance."""
    fov, _ = _FOV.get(body_part, _FOV_DEFAULT)
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [round(fov / matrix, 4)] * 2
    ds.SliceThickness = 5


def _ct(ds: Dataset, body_part: str, matrix: int, flavour: int, contrast: bool) -> None:
    _cross_sectional(ds, body_part, matrix)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.KVP = 120
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.ConvolutionKernel = "FC13" if body_part == "HEAD" else "FC03"
    ds.WindowCenter, ds.WindowWidth = {"HEAD": (40, 80), "CHEST": (-600, 1500)}.get(body_part, (40, 400))
    if contrast:
        ds.ContrastBolusAgent = "IOPAMIDOL"
        ds.ContrastBolusRoute = "IV"


def _mr(ds: Dataset, body_part: str, matrix: int, flavour: int, contrast: bool) -> None:
    _cross_sectional(ds, body_part, matrix)
    scanning, variant, tr, te, ti, name = _MR_SEQUENCES[flavour]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.ScanningSequence = scanning
    ds.SequenceVariant = variant
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = name
    ds.RepetitionTime = tr
    ds.EchoTime = te
    if ti is not None:
        ds.InversionTime = ti
    ds.EchoTrainLength = 1 if scanning == "GR" else 16
    ds.ImagedNucleus = "1H"
    ds.MagneticFieldStrength = 1.5
    ds.WindowCenter = 700
    ds.WindowWidth = 1400
    if contrast:
        ds.ContrastBolusAgent = "GADOXETATE"
        ds.ContrastBolusRoute = "IV"


def _projection_common(ds: Dataset, body_part: str, matrix: int) -> None:
    fov, length = _FOV.get(body_part, _FOV_DEFAULT)
    ds.KVP = 120 if body_part == "CHEST" else 80
    ds.ImagerPixelSpacing = [round(length / matrix, 4), round(fov / matrix, 4)]
    ds.WindowCenter = 1400
    ds.WindowWidth = 2800


def _cr(ds: Dataset, body_part: str, matrix: int, flavour: int, contrast: bool) -> None:
    _projection_common(ds, body_part, matrix)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]


def _dx(ds: Dataset, body_part: str, matrix: int, flavour: int, contrast: bool) -> None:
    _projection_common(ds, body_part, matrix)
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = "B" if body_part in _PAIRED else "U"
    ds.AnatomicRegionSequence = _anatomy(body_part)
    ds.PositionerType = "NONE"
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    ds.DetectorType = "SCINTILLATOR"
    ds.AcquisitionContextSequence = Sequence()


def _rf(ds: Dataset, body_part: str, matrix: int, flavour: int, contrast: bool) -> None:
    """X-Ray Image + X-Ray Acquisition modules; fluoroscopy (VF) is a lateral view with barium."""
    _projection_common(ds, body_part, matrix)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    ds.PixelIntensityRelationship = "LIN"
    ds.RadiationSetting = "SC"
    ds.XRayTubeCurrent = 2
    ds.ExposureTime = 100
    ds.PatientOrientation = ["P", "F"]
    ds.ContrastBolusAgent = "BARIUM"


def _xa(ds: Dataset, body_part: str, matrix: int, flavour: int, contrast: bool) -> None:
    """X-Ray Image + X-Ray Acquisition + XA Positioner modules; a frontal view with iodine."""
    _projection_common(ds, body_part, matrix)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    ds.PixelIntensityRelationship = "LIN"
    ds.RadiationSetting = "GR"
    ds.XRayTubeCurrent = 400
    ds.ExposureTime = 100
    ds.PatientOrientation = ["L", "F"]
    ds.PositionerPrimaryAngle = 0
    ds.PositionerSecondaryAngle = 0
    ds.ContrastBolusAgent = "IOPAMIDOL"


_US_TYPE: Final = {"HEART": "TTE", "NECK": "VASCULAR", "ABDOMEN": "ABDOMINAL"}


def _us(ds: Dataset, body_part: str, matrix: int, flavour: int, contrast: bool) -> None:
    ds.ImageType = ["ORIGINAL", "PRIMARY", _US_TYPE.get(body_part, "ABDOMINAL"), "0001"]
    ds.PatientOrientation = ""


def _es(ds: Dataset, body_part: str, matrix: int, flavour: int, contrast: bool) -> None:
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PatientOrientation = ""
    ds.AcquisitionContextSequence = Sequence()
    ds.AnatomicRegionSequence = _anatomy(body_part)


_MODULES: Final[dict[str, Callable[[Dataset, str, int, int, bool], None]]] = {
    "CT": _ct,
    "MR": _mr,
    "CR": _cr,
    "DX": _dx,
    "US": _us,
    "RF": _rf,
    "XA": _xa,
    "ES": _es,
}
# (photometric interpretation, bits stored, numpy dtype, samples per pixel) per modality
_PIXEL_FORMAT: Final[dict[str, tuple[str, int, type[np.unsignedinteger[Any]], int]]] = {
    **dict.fromkeys(("CT", "MR", "CR", "DX", "RF", "XA"), ("MONOCHROME2", 12, np.uint16, 1)),
    "US": ("MONOCHROME2", 8, np.uint8, 1),
    "ES": ("RGB", 8, np.uint8, 3),
}


def _static_layer(modality: str, body_part: str, matrix: int, flavour: int, contrast: bool) -> Dataset:
    """All that modality, body part, matrix and series flavour fix, including the Image Pixel module."""
    ds = Dataset()
    photometric, bits, dtype, samples = _PIXEL_FORMAT[modality]
    shape = (matrix, matrix, samples) if samples > 1 else (matrix, matrix)
    ds.set_pixel_data(np.zeros(shape, dtype=dtype), photometric, bits, generate_instance_uid=False)
    del ds.PixelData  # set per instance, with the VR chosen here (see _pixel_vr)
    ds.SOPClassUID = SOP_CLASSES[modality]
    ds.Modality = modality
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "rhin-imaging"
    ds.SoftwareVersions = IMPLEMENTATION_VERSION
    ds.BodyPartExamined = body_part
    ds.AcquisitionNumber = 1
    if body_part in _PAIRED:  # both sides: series Laterality is R|L only, so say it per image
        ds.ImageLaterality = "B"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    _MODULES[modality](ds, body_part, matrix, flavour, contrast)
    return ds


@lru_cache(maxsize=8)
def _pixel_vr(modality: str) -> str:
    """OB or OW, as set_pixel_data() picks it for this modality's pixel format."""
    probe = Dataset()
    photometric, bits, dtype, samples = _PIXEL_FORMAT[modality]
    probe.set_pixel_data(
        np.zeros((2, 2, samples) if samples > 1 else (2, 2), dtype=dtype),
        photometric,
        bits,
        generate_instance_uid=False,
    )
    return str(probe["PixelData"].VR)


class _Layer:
    """Keyword-style collector of (tag → VR, value), far cheaper than a Dataset for values set once.

    ``layer.PatientID = "123"`` looks the tag and VR up in pydicom's dictionary; :func:`_encode_layer`
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


def _study_layer(spec: StudySpec) -> _Layer:
    """Patient and General Study modules, the character set and the institution."""
    ds = _Layer()
    ds.SpecificCharacterSet = CHARSET
    ds.StudyDate = _da(spec.study_time)
    ds.StudyTime = _tm(spec.study_time)
    ds.AccessionNumber = spec.accession
    ds.InstitutionName = spec.institution
    ds.ReferringPhysicianName = spec.referring_physician
    ds.StationName = spec.station
    ds.StudyDescription = spec.description
    ds.PatientName = f"{spec.name_romaji}={spec.name_kanji}={spec.name_kana}"
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = _da(spec.birth_date)
    ds.PatientSex = spec.sex
    ds.StudyInstanceUID = spec.study_uid
    ds.StudyID = spec.accession[-16:]
    return ds


def _series_layer(spec: StudySpec, series: int) -> _Layer:
    ds = _Layer()
    start = _series_time(spec, series)
    ds.SeriesDate = _da(start)
    ds.SeriesTime = _tm(start)
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
    return Sequence([_code(value, meaning)])


def _instance_layer(spec: StudySpec, series: int, index: int, count: int, matrix: int) -> _Layer:
    """What changes per image: UIDs, times, position/view and the pixels."""
    ds = _Layer()
    number = index + 1
    when = _series_time(spec, series) + dt.timedelta(seconds=2 * number)
    ds.InstanceCreationDate = ds.AcquisitionDate = ds.ContentDate = _da(when)
    ds.InstanceCreationTime = ds.AcquisitionTime = ds.ContentTime = _tm(when)
    ds.SOPInstanceUID = instance_uid(spec.study_uid, "instance", series, number)
    ds.InstanceNumber = number
    if spec.modality in ("CT", "MR"):
        fov, length = _FOV.get(spec.body_part, _FOV_DEFAULT)
        z = round(_slice_z(index, count) * length / 2.0, 2)
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
    pixels = _pixels(spec.modality, spec.body_part, matrix, index, count, _flavour(spec, series))
    ds.add_new(0x7FE00010, _pixel_vr(spec.modality), pixels)
    return ds


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta


def _check_spec(spec: StudySpec, series: int = 1) -> None:
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
    _check_spec(spec, series)
    count = min(spec.images_per_series, max_images_per_series)
    if not 1 <= number <= count:
        raise ValueError(f"instance {number} is outside 1..{count}")
    ds = Dataset()
    layers = (
        _static_layer(spec.modality, spec.body_part, matrix, _flavour(spec, series), _contrast(spec, series)),
        _study_layer(spec).dataset(),
        _series_layer(spec, series).dataset(),
        _instance_layer(spec, series, number - 1, count, matrix).dataset(),
    )
    for layer in layers:
        if clash := set(ds.keys()) & set(layer.keys()):
            raise AssertionError(f"layers overlap on {sorted(clash)}")  # a bug in this module
        ds.update(layer)
    ds.file_meta = _file_meta(ds.SOPClassUID, ds.SOPInstanceUID)
    return ds


# ---------------------------------------------------------------------------------------------------------
# Fast writer: pydicom encodes each element once per layer; a file is the tag-sorted join of the bytes.

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


def _encode_layer(layer: _Layer) -> Encoded:
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
    return _encode(_static_layer(modality, body_part, matrix, flavour, contrast))


@lru_cache(maxsize=16)
def _meta_encoded(sop_class: str) -> tuple[bytes, bytes]:
    """File meta elements before and after (0002,0003) Media Storage SOP Instance UID."""
    parts = _encode(_file_meta(sop_class, "1.2"))
    before = b"".join(v for t, v in parts.items() if t < 0x00020003)
    after = b"".join(v for t, v in parts.items() if t > 0x00020003)
    return before, after


def _file_bytes(common: Encoded, instance: _Layer, sop_class: str) -> bytes:
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
    _check_spec(spec)
    folder = out_dir / spec.study_uid
    folder.mkdir(parents=True, exist_ok=True)
    count = max(0, min(spec.images_per_series, max_images_per_series))
    sop_class = SOP_CLASSES[spec.modality]
    study = _encode_layer(_study_layer(spec))
    paths: list[Path] = []
    for series in range(1, spec.series + 1):
        static = _static_encoded(
            spec.modality, spec.body_part, matrix, _flavour(spec, series), _contrast(spec, series)
        )
        own = _encode_layer(_series_layer(spec, series))
        common = static | study | own
        if len(common) != len(static) + len(study) + len(own):
            raise AssertionError("static, study and series layers overlap")  # a bug in this module
        for index in range(count):
            path = folder / f"{series:03d}-{index + 1:04d}.dcm"
            path.write_bytes(
                _file_bytes(common, _instance_layer(spec, series, index, count, matrix), sop_class)
            )
            paths.append(path)
    return paths
