"""The static layer of a dataset: the IOD modules that modality, body part, matrix and series fix."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from synthetic.imaging.phantoms import FOV, FOV_DEFAULT
from synthetic.imaging.spec import IMPLEMENTATION_VERSION, MANUFACTURER, SOP_CLASSES, StudySpec


def da(t: dt.datetime | dt.date) -> str:
    return t.strftime("%Y%m%d")


def tm(t: dt.datetime) -> str:
    return t.strftime("%H%M%S")


def code_item(value: str, meaning: str, scheme: str = "SCT") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _anatomy(body_part: str) -> Sequence:
    value, meaning = ANATOMY.get(body_part, ANATOMY["CHEST"])
    return Sequence([code_item(value, meaning)])


def series_time(spec: StudySpec, series: int) -> dt.datetime:
    """Series start a few minutes apart: deterministic, plausible, after the study time."""
    return spec.study_time + dt.timedelta(minutes=2 * (series - 1), seconds=30)


def series_contrast(spec: StudySpec, series: int) -> bool:
    """Contrast studies (造影): the first series of a multi-phase study is the plain one."""
    return "造影" in spec.description and (spec.series == 1 or series > 1)


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


_MR_SEQUENCES: Final = (
    # (ScanningSequence, SequenceVariant, TR, TE, TI, SequenceName); the pixels of flavour 0 are T2-like
    ("SE", "SK", 4000.0, 90.0, None, "T2 TSE"),
    ("SE", "SK", 500.0, 12.0, None, "T1 SE"),
    (["SE", "IR"], ["SK", "MP"], 9000.0, 100.0, 2500.0, "FLAIR"),
    ("GR", "SP", 5.0, 2.0, None, "T1 GRE"),
)


def series_flavour(spec: StudySpec, series: int) -> int:
    """Which variant of the static layer a series uses (MR: its pulse sequence)."""
    return (series - 1) % len(_MR_SEQUENCES) if spec.modality == "MR" else 0


def _cross_sectional(ds: Dataset, body_part: str, matrix: int) -> None:
    """Image Plane module and patient position; the slice position is set per instance."""
    fov, _ = FOV.get(body_part, FOV_DEFAULT)
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
    fov, length = FOV.get(body_part, FOV_DEFAULT)
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


def static_layer(modality: str, body_part: str, matrix: int, flavour: int, contrast: bool) -> Dataset:
    """All that modality, body part, matrix and series flavour fix, including the Image Pixel module."""
    ds = Dataset()
    photometric, bits, dtype, samples = _PIXEL_FORMAT[modality]
    shape = (matrix, matrix, samples) if samples > 1 else (matrix, matrix)
    ds.set_pixel_data(np.zeros(shape, dtype=dtype), photometric, bits, generate_instance_uid=False)
    del ds.PixelData  # set per instance, with the VR chosen here (see pixel_vr)
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
def pixel_vr(modality: str) -> str:
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
