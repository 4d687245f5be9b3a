"""Waveforms: MFER encoding and reading (:mod:`.mfer`) and the synthetic resting 12-lead ECG (:mod:`.ecg`)."""

from synthetic.waveform.ecg import Intervals, intervals_of, synthesize
from synthetic.waveform.files import ecg_file
from synthetic.waveform.mfer import MferError, Recording, decode, encode

__all__ = [
    "Intervals",
    "MferError",
    "Recording",
    "decode",
    "ecg_file",
    "encode",
    "intervals_of",
    "synthesize",
]
