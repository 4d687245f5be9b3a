"""Bytes → segments: ISO-2022-JP checks on the raw bytes, then decoding, then CR splitting.

The whole file is decoded before any HL7 splitting, because splitting JIS bytes on ``|`` would cut
double-byte characters. When a check fails, decoding continues with replacement characters so the
message checks still run and a file with one stray byte shows one finding, not twenty.
"""

from __future__ import annotations

import re

from synthetic.validator.model import Finding
from synthetic.validator.rules import finding

_HIGH = re.compile(rb"[\x80-\xff]")
_ESC = re.compile(rb"\x1b(\$[@AB]|\$\([A-Z@]|\([A-Z@])?")
_LINE_END = re.compile(rb"\r\n|\r|\n")
# a double-byte designation with no later escape before the line end: the line ends in JIS X 0208 mode
_ENDS_TWO_BYTE = re.compile(rb"\x1b\$[@AB][^\x1b\r\n]*(?:\r|\n|$)")
# C0 controls except CR and LF (LF has its own rule), plus DEL; the allowed trailer is stripped first.
_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")


def _escapes(data: bytes, path: str) -> tuple[list[Finding], bool]:
    """Escape-sequence findings, and whether ESC ( J occurred (it is then read as ASCII).

    ESC ( J is tolerated as a warning (spec §6.3): JIS X 0201 Roman differs from ASCII only in ¥ and ‾,
    so it is read as ASCII, which keeps ``\\`` and ``~`` usable as HL7 delimiters.
    """
    kana = bad = roman = 0
    first_bad = ""
    allowed = data.count(b"\x1b$B") + data.count(b"\x1b(B")
    matches = [] if data.count(b"\x1b") == allowed else list(_ESC.finditer(data))  # usual: all allowed
    for m in matches:
        seq = m.group(1) or b""
        if seq in (b"$B", b"(B"):
            continue
        if seq == b"(J":
            roman += 1
        elif seq == b"(I":
            kana += 1
        else:
            bad += 1
            shown = " ".join(seq.decode("ascii")) or "(alone)"
            first_bad = first_bad or f"ESC {shown} at byte {m.start()}"
    out: list[Finding] = []
    if kana:
        out.append(finding("SS2-ENC-KANA", path, f"{kana} half-width katakana shift(s) ESC ( I"))
    if bad:
        out.append(
            finding(
                "SS2-ENC-ESCAPE",
                path,
                f"{bad} escape sequence(s) other than ESC $ B / ESC ( B, first {first_bad}",
            )
        )
    if roman:
        out.append(
            finding(
                "SS2-ENC-JIS-ROMAN",
                path,
                f"{roman} ESC ( J (JIS X 0201 Roman) shift(s); tolerated and read as ASCII (spec §6.3)",
            )
        )
    if _ENDS_TWO_BYTE.search(data):
        lines = [n for n, line in enumerate(_LINE_END.split(data), start=1) if _ENDS_TWO_BYTE.search(line)]
        listed = ", ".join(map(str, lines[:5])) + (" …" if len(lines) > 5 else "")
        out.append(
            finding(
                "SS2-ENC-SHIFT", path, f"line(s) {listed} end in JIS X 0208 mode (no ESC ( B before the end)"
            )
        )
    return out, roman > 0


def decode(data: bytes, path: str) -> tuple[list[str], list[Finding]]:
    """Segments of the message, split on CR, with the byte/character/terminator findings.

    Accepted trailer (spec §3.1): an optional CR, then an optional 0x1C (MLLP end block), then an optional
    CR. LF or CRLF terminators are an error; the segments are still split on them so the other checks run.
    """
    out: list[Finding] = []
    if not data.isascii():
        highs = _HIGH.findall(data)
        high = _HIGH.search(data)
        at = high.start() if high else -1
        out.append(
            finding(
                "SS2-ENC-HIGH-BYTE",
                path,
                f"{len(highs)} byte(s) >= 0x80, first 0x{data[at]:02X} at byte {at} (Shift_JIS/EUC/UTF-8?)",
            )
        )
    if b"\x1b" in data:
        found, roman = _escapes(data, path)
        out.extend(found)
        if roman:
            data = data.replace(b"\x1b(J", b"\x1b(B")
    try:
        text = data.decode("iso2022_jp")
    except UnicodeDecodeError as exc:
        if not any(f.severity == "error" for f in out):
            snippet = data[max(0, exc.start - 8) : exc.end + 8]
            out.append(
                finding(
                    "SS2-ENC-DECODE",
                    path,
                    f"not ISO-2022-JP at bytes {exc.start}-{exc.end - 1} ({exc.reason}) near {snippet!r}",
                )
            )
        text = data.decode("iso2022_jp", errors="replace")
    if "\n" in text:
        crlf = text.count("\r\n")
        lf = text.count("\n") - crlf
        out.append(
            finding("SS2-SEG-TERMINATOR", path, f"segments end with LF ({lf}) / CRLF ({crlf}) instead of CR")
        )
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    if text.endswith("\r"):
        text = text[:-1]
    if text.endswith("\x1c"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    control = _CONTROL.search(text)
    if control:
        n = len(_CONTROL.findall(text))
        out.append(
            finding(
                "SS2-ENC-CONTROL",
                path,
                f"{n} control character(s), first U+{ord(control.group()):04X} at {control.start()}",
            )
        )
    return (text.split("\r") if text else []), out
