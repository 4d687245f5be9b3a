"""Phantom-like pixel data: analytic ellipsoid bodies cut, projected or imaged per modality."""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt

from synthetic.imaging.spec import UID_NAMESPACE

Float2D = npt.NDArray[np.float64]

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
FOV: Final[dict[str, tuple[float, float]]] = {"HEAD": (240.0, 180.0), "NECK": (200.0, 160.0)}
FOV_DEFAULT: Final = (400.0, 360.0)


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


def slice_z(index: int, count: int) -> float:
    """Spread the written instances over the scanned range so each shows another cross-section."""
    return 0.0 if count <= 1 else -0.55 + 1.1 * index / (count - 1)


@lru_cache(maxsize=512)  # ≈4 MB at matrix 64; keys repeat (modality, body part, slice slot)
def pixel_data(modality: str, body_part: str, matrix: int, index: int, count: int, variant: int) -> bytes:
    """Pixel data of one instance (memoised: studies repeat modality, body part and slice positions)."""
    arr: npt.NDArray[np.generic]
    if modality == "CT":
        hu = (_section(body_part, slice_z(index, count), matrix) - 1.0) * 1000.0
        arr = np.clip(np.rint(hu) + 1024.0, 0, 4095).astype(np.uint16)
    elif modality == "MR":
        d = _section(body_part, slice_z(index, count), matrix)
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
    d = _section(body_part, slice_z(index, count) * 0.5, matrix)
    echo = np.where(d < 0.5, 10.0, np.where(d > 1.5, 230.0, 140.0 + (d - 1.02) * 2500.0))
    echo = np.where(np.abs(d - 1.0) < 0.025, 15.0, echo)  # fluid is anechoic
    seed = int.from_bytes(uuid.uuid5(UID_NAMESPACE, f"us/{body_part}/{index}/{count}").bytes[:8], "big")
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
