"""Running dciodvfy (Debian's dicom3tools) and reading its verdict, with two documented false positives.

dciodvfy does not track ISO 2022 state, and it misreads two things every Japanese name can trigger:

1. a JIS X 0208 character whose second byte is 0x5C (本 is 0x4B5C: 山本, 松本, 橋本 …) is taken for the value
   delimiter, giving "Bad attribute Value Multiplicity". PS3.5 §6.1.2.3: "Multi-byte encoding systems, such
   as … ISO 2022, may generate encodings that contain a byte valued 05/12. Only the character that encodes
   as a single byte valued 05/12 is a delimiter." (DCMTK fixed the same mistake, its bug #684.)
2. lengths are checked in bytes, escape sequences included; PS3.5 Table 6.2-1 counts characters: PN 64 per
   component group, LO 64, SH 16.

:func:`real_errors` drops exactly these messages, and only after checking the condition on the
element's own bytes; every other error, and these two when the condition does not hold, are kept.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.tag import Tag

ESC_JIS = b"\x1b$B"
ESC_ASCII = (b"\x1b(B", b"\x1b(J")
SUMMARY = "Error - Dicom dataset contains invalid data values for Value Representations"
VM_ERROR = re.compile(
    r"^Error - Bad attribute Value Multiplicity (?:\d+ \(1 Required by Dictionary\)|Type \d \w+) "
    r"Element=<(\w+)>"
)
LENGTH_ERROR = re.compile(
    r"^Error - Value invalid for this VR - \((0x[0-9a-f]{4}),(0x[0-9a-f]{4})\) (PN|LO|SH) "
    r".* Length invalid for this VR"
)
MAX_CHARACTERS = {"LO": 64, "SH": 16, "PN": 64}


def dciodvfy(path: Path) -> tuple[int, list[str]]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.fail("dciodvfy is not on PATH: install dicom3tools (`make test` does it with apt-get)")
    done = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, (done.stdout + done.stderr).splitlines()


def backslash_only_inside_jis(raw: bytes) -> bool:
    """True when every 0x5C byte sits inside an ESC $ B (JIS X 0208) run, i.e. none is a delimiter."""
    jis = False
    i = 0
    found = False
    while i < len(raw):
        if raw.startswith(ESC_JIS, i):
            jis, i = True, i + 3
            continue
        if raw.startswith(ESC_ASCII, i):
            jis, i = False, i + 3
            continue
        if raw[i] == 0x5C:
            if not jis:
                return False
            found = True
        i += 1
    return found


def _raw(ds: pydicom.Dataset, tag: Tag) -> bytes:
    element = ds.get_item(tag)
    assert element is not None
    value = element.value
    return value if isinstance(value, bytes) else bytes(value)


def real_errors(path: Path, lines: list[str]) -> list[str]:
    """dciodvfy's error lines for ``path`` minus the two verified false positives described above."""
    errors = [line for line in lines if line.startswith(("Error", "Abort"))]
    if not errors:
        return []
    raw_ds = pydicom.dcmread(path, defer_size=None)
    decoded = pydicom.dcmread(path)
    kept = []
    dropped = 0
    for line in errors:
        if line == SUMMARY:
            continue
        vm = VM_ERROR.match(line)
        if vm:
            tag = Tag(vm.group(1))
            if backslash_only_inside_jis(_raw(raw_ds, tag)) and decoded[tag].VM == 1:
                dropped += 1
                continue
        length = LENGTH_ERROR.match(line)
        if length:
            tag = Tag(int(length.group(1), 16), int(length.group(2), 16))
            vr = length.group(3)
            value = decoded[tag].value
            if vr == "PN":
                parts = [str(g) for g in (value.alphabetic, value.ideographic, value.phonetic)]
            else:
                parts = [str(value)]
            if all(len(part) <= MAX_CHARACTERS[vr] for part in parts):
                dropped += 1
                continue
        kept.append(line)
    if SUMMARY in errors and not dropped:
        kept.append(SUMMARY)
    return kept
