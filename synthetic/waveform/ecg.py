"""A deterministic synthetic 12-lead resting ECG whose intervals are the ones the world reports.

The OMG-13 result of an ECG carries heart rate, PQ, QRS and QT (``99MFR`` codes); :func:`synthesize`
draws 10 s of 12 leads that have exactly those intervals, so a reader that delineates the signal finds
the reported values. The model, stated once:

- Each beat is a sum of compactly supported raised-cosine waves placed relative to its QRS onset
  (``t = 0``): P over ``[-PQ, -PQ + P]`` (P = min(100 ms, PQ − 40 ms)); Q, R, S lobes inside
  ``[0, QRS]`` (nothing of the QRS lies outside it); T rising to its peak and falling so that the
  tangent at its steepest descent meets the baseline at ``t = QT`` (the tangent method, the usual
  clinical definition of the T end; the wave itself reaches zero a little later).
- RR = 60 000 / HR ms with ±2 % beat-to-beat variation in sinus rhythm; in atrial fibrillation RR
  varies ±15 % (mean kept), there are no P waves, and 5-7 Hz fibrillatory waves of 30 µV run throughout.
- Limb leads I and II and the chest leads V1-V6 have typical amplitudes per wave (mV, below), scaled
  per recording by the seed; III, aVR, aVL and aVF are derived from I and II (Einthoven/Goldberger)
  before noise. Gaussian noise of 10 µV and a 0.3 Hz baseline drift of up to 40 µV are added.
- Samples are 500 Hz, quantised to 5 µV (what :mod:`synthetic.waveform.mfer` writes).
- Randomness comes from ``numpy.random.RandomState(seed)``, whose stream numpy keeps stable across
  versions, so the same seed gives the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synthetic.waveform.mfer import STANDARD_12, Recording

RATE_HZ = 500
SECONDS = 10
RESOLUTION_V = 5e-6
#: wave amplitudes in mV: P, Q, R, S, T
AMPLITUDES: dict[str, tuple[float, float, float, float, float]] = {
    "I": (0.08, -0.05, 0.60, -0.10, 0.20),
    "II": (0.12, -0.08, 1.00, -0.20, 0.30),
    "V1": (0.06, 0.00, 0.30, -0.90, 0.10),
    "V2": (0.06, 0.00, 0.60, -1.20, 0.50),
    "V3": (0.06, 0.00, 0.90, -0.80, 0.45),
    "V4": (0.06, -0.05, 1.30, -0.40, 0.40),
    "V5": (0.06, -0.08, 1.20, -0.20, 0.30),
    "V6": (0.05, -0.08, 0.90, -0.10, 0.25),
}
T_FALL_MS = 70.0  # half-width of the T wave's descending half (raised cosine)
T_RISE_MS = 110.0


@dataclass(frozen=True, slots=True)
class Intervals:
    """What the OMG-13 result says: heart rate (/min) and PQ, QRS, QT (ms); rhythm ``sinus`` or ``af``."""

    hr: float
    pq: float
    qrs: float
    qt: float
    rhythm: str = "sinus"

    def __post_init__(self) -> None:
        if not 20 <= self.hr <= 250:
            raise ValueError(f"heart rate {self.hr}/min is outside 20-250")
        if not (self.qrs > 0 and self.qt > self.qrs and self.pq > 40):
            raise ValueError(f"intervals PQ {self.pq}, QRS {self.qrs}, QT {self.qt} ms are not a beat")
        if self.rhythm not in ("sinus", "af"):
            raise ValueError(f"rhythm {self.rhythm!r} is neither 'sinus' nor 'af'")


def _bump(t: np.ndarray, start: float, end: float) -> np.ndarray:
    """Raised cosine rising from 0 at ``start`` to 1 at the middle and back to 0 at ``end`` (ms)."""
    mid, half = (start + end) / 2, (end - start) / 2
    x = (t - mid) / half
    return np.asarray(np.where(np.abs(x) < 1, (1 + np.cos(np.pi * x)) / 2, 0.0))


def _add(wave: np.ndarray, t: np.ndarray, start: float, end: float) -> None:
    """Add ``_bump`` over the samples of ``[start, end]`` only (the rest of a beat's bump is zero)."""
    lo = max(0, math.floor(start * RATE_HZ / 1000))
    hi = min(len(t), math.ceil(end * RATE_HZ / 1000) + 1)
    if lo < hi:
        wave[lo:hi] += _bump(t[lo:hi], start, end)


def _t_wave(t: np.ndarray, peak: float) -> np.ndarray:
    """Asymmetric raised cosine: rising over ``T_RISE_MS`` to ``peak``, falling over ``T_FALL_MS``."""
    rise = np.where(
        (t <= peak) & (t > peak - T_RISE_MS), (1 + np.cos(np.pi * (t - peak) / T_RISE_MS)) / 2, 0.0
    )
    fall = np.where(
        (t > peak) & (t < peak + T_FALL_MS), (1 + np.cos(np.pi * (t - peak) / T_FALL_MS)) / 2, 0.0
    )
    return np.asarray(rise + fall)


def t_peak(qt: float) -> float:
    """Where the T peak goes so that the tangent at its steepest descent meets zero at ``qt``.

    For ``(1 + cos(π(t − p)/w)) / 2`` the steepest descent is at ``p + w/2`` (value 1/2, slope −π/2w),
    so its tangent reaches zero at ``p + w(1/2 + 1/π)``.
    """
    return qt - T_FALL_MS * (0.5 + 1 / math.pi)


def beat_onsets(iv: Intervals, rng: np.random.RandomState) -> list[float]:
    """QRS onsets (ms) within the recording; the first leaves room for its P wave."""
    rr = 60000.0 / iv.hr
    spread = 0.15 if iv.rhythm == "af" else 0.02
    first = iv.pq + 60.0 + rng.uniform(0, rr * 0.5)
    onsets = [first]
    factors = []
    while onsets[-1] < SECONDS * 1000:
        factors.append(1 + rng.uniform(-spread, spread))
        onsets.append(onsets[-1] + rr * factors[-1])
    # keep the mean RR at exactly 60000/HR over the beats that fit, so the rate is the reported one
    onsets = [o for o in onsets if o + iv.qt + 60 < SECONDS * 1000]
    if len(onsets) >= 2:
        span = onsets[-1] - onsets[0]
        want = rr * (len(onsets) - 1)
        onsets = [onsets[0] + (o - onsets[0]) * want / span for o in onsets]
    return onsets


def synthesize(iv: Intervals, seed: int) -> Recording:
    """Ten seconds of 12 leads, deterministic in ``seed``; samples in units of 5 µV."""
    rng = np.random.RandomState(seed & 0xFFFFFFFF)
    n = RATE_HZ * SECONDS
    t = np.arange(n) * (1000.0 / RATE_HZ)
    p_len = min(100.0, iv.pq - 40.0)
    waves = np.zeros((5, n))  # P, Q, R, S, T
    peak = t_peak(iv.qt)
    for onset in beat_onsets(iv, rng):
        if iv.rhythm == "sinus":
            _add(waves[0], t, onset - iv.pq, onset - iv.pq + p_len)
        _add(waves[1], t, onset, onset + 0.2 * iv.qrs)
        _add(waves[2], t, onset + 0.12 * iv.qrs, onset + 0.72 * iv.qrs)
        _add(waves[3], t, onset + 0.62 * iv.qrs, onset + iv.qrs)
        lo = max(0, int((onset + peak - T_RISE_MS) * RATE_HZ / 1000))
        hi = min(n, int((onset + peak + T_FALL_MS) * RATE_HZ / 1000) + 2)
        if lo < hi:
            waves[4][lo:hi] += _t_wave(t[lo:hi] - onset, peak)
    scale = rng.uniform(0.75, 1.25, size=5)  # this recording's voltages
    base = {lead: np.asarray(amp) * scale @ waves for lead, amp in AMPLITUDES.items()}
    limb_i, limb_ii = base["I"], base["II"]
    mv = {
        "I": limb_i,
        "II": limb_ii,
        "III": limb_ii - limb_i,
        "aVR": -(limb_i + limb_ii) / 2,
        "aVL": limb_i - limb_ii / 2,
        "aVF": limb_ii - limb_i / 2,
        **{f"V{k}": base[f"V{k}"] for k in range(1, 7)},
    }
    drift_phase = rng.uniform(0, 2 * math.pi)
    drift = rng.uniform(0, 0.04) * np.sin(2 * math.pi * 0.3 * t / 1000 + drift_phase)
    if iv.rhythm == "af":
        f = rng.uniform(5, 7)
        drift = drift + 0.03 * np.sin(2 * math.pi * f * t / 1000 + rng.uniform(0, 2 * math.pi))
    noise = rng.normal(0, 0.01, (len(STANDARD_12), n))
    leads: dict[str, np.ndarray] = {}
    for k, name in enumerate(STANDARD_12):
        signal = mv[name] + drift + noise[k]
        leads[name] = np.clip(np.round(signal / 1000 / RESOLUTION_V), -32768, 32767).astype(np.int16)
    return Recording(leads, interval_s=1.0 / RATE_HZ, resolution_v=RESOLUTION_V)


def intervals_of(measurements: dict[str, object]) -> Intervals:
    """The :class:`Intervals` of an OMG-13 result's ``measurements`` (hr, pq, qrs, qt; rhythm)."""

    def number(key: str) -> float:
        value = measurements.get(key)
        if not isinstance(value, int | float):
            raise ValueError(f"ECG measurement {key!r} is {value!r}, not a number")
        return float(value)

    rhythm = measurements.get("rhythm", "sinus")
    return Intervals(number("hr"), number("pq"), number("qrs"), number("qt"), str(rhythm))
