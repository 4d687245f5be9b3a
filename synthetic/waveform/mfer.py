"""MFER (Medical waveform Format Encoding Rules; HS010, ISO 22077-1) encoder and reader for resting ECGs.

An MFER file is a sequence of TLV definitions (tag, length, value) followed by the waveform. Facts used
here, with where they were read (no byte example is given in docs/ssmix2.md §5.6, so the tests
check the bytes against these facts):

- Tags (MFER Part 1 Table 5-64; www.medical-storage.co.jp/MFER/Jp/Spec01-05.htm and the tag tables of
  independent readers): BLE 0x01, TXC 0x03, BLK 0x04, CHN 0x05, SEQ 0x06, WFM 0x08, LDN 0x09, DTP 0x0A,
  IVL 0x0B, SEN 0x0C, WAV 0x1E, ATT 0x3F, PRE 0x40, END 0x80, PNM 0x81, PID 0x82, AGE 0x83, SEX 0x84,
  TIM 0x85.
- Length: one octet below 0x80; ``0x80 | n`` then n big-endian octets for longer values.
- MWF_ATT (channel attributes) is followed by the channel number (0-based, 7 bits per octet) before its
  length; its value holds the channel's own definitions (here its lead, MWF_LDN).
- IVL and SEN: unit code (IVL: 1 = second; SEN: 0 = volt), a signed decimal exponent, a signed mantissa
  (so 2 ms is ``01 FD 00 02`` and 2.5 µV would be exponent -7 mantissa 25).
- BLE 0x00 = big endian (the default); DTP 0 = 16-bit signed integers; WFM 1 = standard 12-lead ECG.
- Lead codes (Part 1 Table 5-17): I 1, II 2, V1-V6 3-8, III 61, aVR 62, aVL 63, aVF 64.
- Frame layout: for each sequence, for each channel, a block of BLK samples.
- PRE: 32 ASCII characters starting ``MFR `` (Spec05's example ``MFR Standard 12 leads ECG``).
- AGE: years (1 octet), days (2), birth year (2), month (1), day (1). SEX: 0 unknown, 1 male, 2 female.
  TIM: year (2), month, day, hour, minute, second (1 each), milliseconds (2), microseconds (2).
- PNM ``family^phonetic family^given^phonetic given``; TXC names the text encoding (here ``UTF-8``).

Choices: one frame of 10 s at 500 Hz (BLK = 5000, SEQ = 1) and 5 µV per unit, 12 channels; the
preamble and the patient block come first, END last.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

BLE, TXC, BLK, CHN, SEQ, WFM, LDN, DTP, IVL, SEN = 0x01, 0x03, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0A, 0x0B, 0x0C
WAV, ATT, PRE, END = 0x1E, 0x3F, 0x40, 0x80
PNM, PID, AGE, SEX, TIM = 0x81, 0x82, 0x83, 0x84, 0x85

LEADS: dict[str, int] = {
    "I": 1, "II": 2, "III": 61, "aVR": 62, "aVL": 63, "aVF": 64,
    "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8,
}  # fmt: skip
LEAD_NAMES = {code: name for name, code in LEADS.items()}
STANDARD_12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
WFM_STANDARD_12 = 1
UNIT_SECOND = 1
UNIT_VOLT = 0
PREAMBLE = "MFR Standard 12 leads ECG"
SEXES = {"M": 1, "F": 2}


class MferError(ValueError):
    """A file that is not MFER this reader understands; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Scaled:
    """``mantissa × 10^exponent`` of ``unit`` (IVL, SEN)."""

    unit: int
    exponent: int
    mantissa: int

    @property
    def value(self) -> float:
        return self.mantissa * 10.0**self.exponent


@dataclass
class Recording:
    """One 12-lead recording: samples per lead (int16 arrays, in units of ``resolution_v`` volts)."""

    leads: dict[str, np.ndarray]
    interval_s: float = 0.002
    resolution_v: float = 5e-6
    patient_id: str = ""
    patient_name: str = ""
    birth_date: dt.date | None = None
    sex: str = ""
    time: dt.datetime | None = None
    extra: dict[int, bytes] = field(default_factory=dict)  # other tags read (tag -> value)

    @property
    def rate_hz(self) -> float:
        return 1.0 / self.interval_s

    def millivolts(self, lead: str) -> np.ndarray:
        return np.asarray(self.leads[lead], dtype=np.float64) * (self.resolution_v * 1000.0)


def tlv(tag: int, value: bytes) -> bytes:
    """One definition: tag, length (short or long form), value."""
    n = len(value)
    if n < 0x80:
        return bytes((tag, n)) + value
    size = (n.bit_length() + 7) // 8
    if size > 4:
        raise MferError(f"tag 0x{tag:02X}: value of {n} octets is longer than MFER allows")
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + value


def scaled(unit: int, exponent: int, mantissa: int) -> bytes:
    """IVL/SEN value: unit, signed exponent, 16-bit signed mantissa (big endian)."""
    return struct.pack(">Bbh", unit, exponent, mantissa)


def _to_scaled(value: float, unit: int) -> bytes:
    """The largest exponent (3 down to -9) whose 16-bit mantissa holds ``value`` to 1 part in 10^6."""
    for exponent in range(3, -10, -1):
        mantissa = round(value / 10.0**exponent)
        if -32768 <= mantissa <= 32767 and abs(mantissa * 10.0**exponent - value) <= abs(value) * 1e-6:
            return scaled(unit, exponent, mantissa)
    raise MferError(f"{value} cannot be written as a 16-bit mantissa and a decimal exponent")


def _age(birth: dt.date, at: dt.date) -> bytes:
    years = at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))
    anniversary = (
        birth.replace(year=birth.year + years) if not (birth.month == 2 and birth.day == 29) else None
    )
    days = (at - anniversary).days if anniversary else 0
    return struct.pack(">BHHBB", max(0, min(years, 255)), max(0, days), birth.year, birth.month, birth.day)


def _time(t: dt.datetime) -> bytes:
    return struct.pack(">HBBBBBHH", t.year, t.month, t.day, t.hour, t.minute, t.second,
                       t.microsecond // 1000, t.microsecond % 1000)  # fmt: skip


def header(rec: Recording, n_samples: int) -> bytes:
    """Every definition before the waveform, in the order written."""
    parts = [
        tlv(PRE, PREAMBLE.ljust(32).encode("ascii")),
        tlv(BLE, b"\x00"),
        tlv(TXC, b"UTF-8"),
        tlv(WFM, struct.pack(">H", WFM_STANDARD_12)),
        tlv(IVL, _to_scaled(rec.interval_s, UNIT_SECOND)),
        tlv(SEN, _to_scaled(rec.resolution_v, UNIT_VOLT)),
        tlv(DTP, b"\x00"),
        tlv(BLK, struct.pack(">I", n_samples)),
        tlv(CHN, struct.pack(">B", len(rec.leads))),
        tlv(SEQ, struct.pack(">B", 1)),
    ]
    for channel, name in enumerate(rec.leads):
        if channel > 0x7F:
            raise MferError("more than 128 channels")
        inner = tlv(LDN, struct.pack(">H", LEADS[name]))
        parts.append(bytes((ATT, channel)) + tlv(0, inner)[1:])
    if rec.patient_id:
        parts.append(tlv(PID, rec.patient_id.encode("utf-8")))
    if rec.patient_name:
        parts.append(tlv(PNM, rec.patient_name.encode("utf-8")))
    if rec.birth_date is not None and rec.time is not None:
        parts.append(tlv(AGE, _age(rec.birth_date, rec.time.date())))
    if rec.sex:
        parts.append(tlv(SEX, bytes((SEXES.get(rec.sex, 0),))))
    if rec.time is not None:
        parts.append(tlv(TIM, _time(rec.time)))
    return b"".join(parts)


def encode(rec: Recording) -> bytes:
    """The MFER bytes of ``rec`` (all leads the same length; samples must fit 16-bit signed)."""
    lengths = {len(v) for v in rec.leads.values()}
    if len(lengths) != 1:
        raise MferError(f"leads differ in length: {sorted(lengths)}")
    (n,) = lengths
    unknown = [name for name in rec.leads if name not in LEADS]
    if unknown:
        raise MferError(f"unknown lead name(s): {unknown}")
    data = bytearray()
    for name, values in rec.leads.items():
        arr = np.asarray(values)
        if arr.size and (arr.min() < -32768 or arr.max() > 32767):
            raise MferError(f"lead {name}: a sample does not fit 16-bit signed")
        data += arr.astype(">i2").tobytes()
    return header(rec, n) + tlv(WAV, bytes(data)) + bytes((END, 0))


def _length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise MferError(f"offset {pos}: length missing")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    size = first & 0x7F
    if size == 0 or size > 4 or pos + 1 + size > len(data):
        raise MferError(f"offset {pos}: bad long-form length 0x{first:02X}")
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "big"), pos + 1 + size


def definitions(data: bytes, pos: int = 0, end: int | None = None) -> Iterator[tuple[int, int, bytes]]:
    """``(tag, channel or -1, value)`` of each definition up to MWF_END; MWF_ATT yields its channel."""
    end = len(data) if end is None else end
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag == END:
            return
        channel = -1
        if tag == ATT:
            channel = 0
            while True:
                if pos >= end:
                    raise MferError("MWF_ATT: channel number cut off")
                octet = data[pos]
                pos += 1
                channel = (channel << 7) | (octet & 0x7F)
                if not octet & 0x80:
                    break
        length, pos = _length(data, pos)
        if pos + length > end:
            raise MferError(f"tag 0x{tag:02X}: {length} octets declared, {end - pos} left")
        yield tag, channel, data[pos : pos + length]
        pos += length
    raise MferError("no MWF_END")


def _scaled_value(value: bytes) -> float:
    if len(value) < 3:
        raise MferError("IVL/SEN needs unit, exponent and mantissa")
    exponent = struct.unpack(">b", value[1:2])[0]
    mantissa = int.from_bytes(value[2:], "big", signed=True)
    return float(mantissa * 10.0**exponent)


def decode(data: bytes) -> Recording:
    """The recording an MFER file holds (big-endian, 16-bit signed, one frame: what :func:`encode` writes).

    Other layouts (little endian, other data types, several frames) raise :class:`MferError` naming the
    definition, rather than returning wrong samples.
    """
    interval, resolution = 0.001, 1e-6
    block, channels, sequences = 1, 1, 1
    leads: dict[int, int] = {}
    wav: bytes | None = None
    rec = Recording({})
    for tag, channel, value in definitions(data):
        if tag == BLE and value not in (b"", b"\x00"):
            raise MferError("only big-endian MFER is read")
        if tag == DTP and value not in (b"", b"\x00"):
            raise MferError(f"only 16-bit signed samples are read (MWF_DTP {value.hex()})")
        if tag == IVL:
            interval = _scaled_value(value)
        elif tag == SEN:
            resolution = _scaled_value(value)
        elif tag == BLK:
            block = int.from_bytes(value, "big")
        elif tag == CHN:
            channels = int.from_bytes(value, "big")
        elif tag == SEQ:
            sequences = int.from_bytes(value, "big")
        elif tag == ATT:
            for inner, _ch, v in definitions(value + bytes((END, 0))):
                if inner == LDN:
                    leads[channel] = int.from_bytes(v[:2] if len(v) >= 2 else v, "big")
        elif tag == WAV:
            if wav is not None:
                raise MferError("more than one waveform frame")
            wav = value
        elif tag == PID:
            rec.patient_id = value.decode("utf-8")
        elif tag == PNM:
            rec.patient_name = value.decode("utf-8")
        elif tag == SEX:
            rec.sex = {1: "M", 2: "F"}.get(value[0], "U") if value else ""
        elif tag == AGE and len(value) >= 7:
            year, month, day = struct.unpack(">HBB", value[3:7])
            rec.birth_date = dt.date(year, month, day)
        elif tag == TIM and len(value) >= 7:
            y, mo, d, h, mi, s = struct.unpack(">HBBBBB", value[:7])
            ms, us = struct.unpack(">HH", value[7:11]) if len(value) >= 11 else (0, 0)
            rec.time = dt.datetime(y, mo, d, h, mi, s, ms * 1000 + us)
        else:
            rec.extra[tag] = value
    if wav is None:
        raise MferError("no waveform (MWF_WAV)")
    per_sequence = block * channels
    if len(wav) != 2 * per_sequence * sequences:
        raise MferError(f"MWF_WAV has {len(wav)} octets; BLK×CHN×SEQ×2 = {2 * per_sequence * sequences}")
    frame = np.frombuffer(wav, dtype=">i2").reshape(sequences, channels, block)
    out: dict[str, np.ndarray] = {}
    for ch in range(channels):
        name = LEAD_NAMES.get(leads.get(ch, -1), f"channel{ch + 1}")
        out[name] = frame[:, ch, :].reshape(-1).astype(np.int16)
    rec.leads = out
    rec.interval_s = interval
    rec.resolution_v = resolution
    return rec


def lead_order(names: Sequence[str]) -> list[str]:
    """``names`` in the standard 12-lead order (others after, in their given order)."""
    rank = {n: i for i, n in enumerate(STANDARD_12)}
    return sorted(names, key=lambda n: rank.get(n, len(rank)))
