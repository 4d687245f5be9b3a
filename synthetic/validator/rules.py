"""The rule catalogue and the SS-MIX2 tables the rules check against (spec: docs/ssmix2.md).

Every finding names one rule from :data:`RULES`; a rule has exactly one severity, so where the spec
records a deviation in published samples, or marks a requirement as inferred, the tolerated form has its
own warning rule instead of an error:

- SS2-NAME-TIMESTAMP-15: NHO samples use a 15-digit 発生日時; the guideline's form is 17 digits (§1.4).
- SS2-NAME-ORDER-LENGTH: a guideline sample has a 13-character オーダNo; INDEXDB allows 22 (§1.4).
- SS2-NAME-ORDER-NONE: 15 nines for "no order" is what every ADT/PPR sample shows, not a quoted rule.
- SS2-NAME-PID-SHORT: the layout for IDs under 6 characters is not found (§1.1); Python slicing is used.
- SS2-ENC-JIS-ROMAN: ESC ( J is to be tolerated (§6.3); it is read as ASCII.
- SS2-ENC-CONTROL: control characters are not addressed by the spec; HL7 text is printable.
- SS2-SEG-NO-GRAMMAR: an event without a grammar cannot be order-checked; saying so beats silence.
- SS2-MSH-9-STRUCTURE: several MSH-9.3 structures in spec §2 are inferred [I].
- SS2-MSH-18-VARIANT / SS2-MSH-20-VARIANT: ``~ISOIR87``, ``ISO IR87`` and ``ISO2022-1994`` occur in
  samples and in S1's field table (§3.2).
- SS2-MSH-21: the profile is in all samples [V-s] but no quoted rule requires it.
- SS2-PID-3-PI: guideline samples carry a bare PID-3 (§3.3).
- SS2-FIELD-NOT-USED / SS2-FIELD-LENGTH: a valued N field or an over-long value is ignored or cut by a
  receiver; no data is lost or misread (synthetic/validator/usage.py says more).

SS2-PID-3-ID is an error: a file whose PID-3.1 differs from its patient-ID folder is another patient's
data filed in this patient's folder — a privacy incident in a network that shares by folder. The
guideline's sample messages with a different PID-3 are samples, not stored files (issue 16).

Everything else is an error: the guideline requires it or HL7 v2.5 cannot be read without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from synthetic.validator.model import Finding, RuleInfo, Severity

_RULES: list[tuple[str, Severity, str, str]] = [
    # storage walk
    ("SS2-ROOT-MISSING", "error", "storage root is not a directory", "brief; spec §1.1"),
    ("SS2-ROOT-EMPTY", "warning", "storage root holds no files", "brief (skip nothing silently)"),
    (
        "SS2-FILE-UNREADABLE",
        "error",
        "entry cannot be read as a regular file",
        "brief (skip nothing silently)",
    ),
    ("SS2-LAYOUT-DEPTH", "error", "file is not exactly 6 levels below the root", "spec §1.1"),
    ("SS2-LAYOUT-DIR", "error", "directory where a message file is expected", "spec §1.1"),
    # file name and path
    ("SS2-NAME-GRAMMAR", "error", "file name does not follow the 7-field grammar", "spec §1.4, §6.2"),
    (
        "SS2-NAME-TIMESTAMP-15",
        "warning",
        "15-digit 発生日時 (NHO samples) instead of 17",
        "spec §1.4 deviations",
    ),
    (
        "SS2-NAME-ORDER-LENGTH",
        "warning",
        "オーダNo is not 15 characters (≤ 22 tolerated)",
        "spec §1.4 (S6, INDEXDB)",
    ),
    (
        "SS2-NAME-ORDER-NONE",
        "warning",
        "ADT/PPR file without the no-order value 999999999999999",
        "spec §1.4",
    ),
    (
        "SS2-NAME-PID-SHORT",
        "warning",
        "patient ID shorter than 6 characters: layout rule unknown",
        "spec §1.1",
    ),
    ("SS2-LAYOUT-PATH", "error", "folders differ from pid[0:3]/pid[3:6]/pid/<date>", "spec §1.1, §6.1 (S2)"),
    (
        "SS2-LAYOUT-TYPE-FOLDER",
        "error",
        "data-type folder differs from the file's data type",
        "spec §1.1, §6.1",
    ),
    ("SS2-FLAG-DUPLICATE", "error", "more than one flag-1 file per pid/date/type/order", "spec §1.5, §6.9"),
    # bytes and characters
    ("SS2-ENC-HIGH-BYTE", "error", "byte ≥ 0x80 (not 7-bit ISO-2022-JP)", "spec §3.1, §6.3"),
    ("SS2-ENC-KANA", "error", "half-width katakana (ESC ( I)", "spec §3.1, §6.3"),
    ("SS2-ENC-ESCAPE", "error", "escape sequence other than ESC $ B / ESC ( B / ESC ( J", "spec §3.1, §6.3"),
    ("SS2-ENC-JIS-ROMAN", "warning", "ESC ( J (JIS X 0201 Roman) instead of ESC ( B", "spec §6.3"),
    ("SS2-ENC-SHIFT", "error", "segment or file ends in JIS X 0208 mode", "spec §3.1; RFC 1468"),
    ("SS2-ENC-DECODE", "error", "bytes do not decode as ISO-2022-JP", "spec §3.1, §6.3"),
    ("SS2-ENC-CONTROL", "warning", "control character inside the message", "HL7 v2.5 §2.A (printable text)"),
    # segments
    ("SS2-SEG-TERMINATOR", "error", "LF or CRLF segment terminator (must be CR)", "spec §3.1, §6.4"),
    ("SS2-SEG-ID", "error", "segment ID is not 3 uppercase alphanumerics", "spec §6.4"),
    ("SS2-SEG-ORDER", "error", "segment sequence does not match the message grammar", "spec §2, §6.8 (S2)"),
    ("SS2-SEG-NO-GRAMMAR", "warning", "no segment grammar for the message's MSH-9 event", "spec §2, §6.8"),
    # MSH
    ("SS2-MSH-FIRST", "error", "MSH is missing or not the first segment", "HL7 v2.5 §2.5; spec §3.1"),
    ("SS2-MSH-ENCODING", "error", "MSH-1/MSH-2 are not | and ^~\\&", "spec §3.1"),
    (
        "SS2-MSH-9-EVENT",
        "error",
        "MSH-9 event does not belong to the file's data type",
        "spec §2, §1.5, §6.5",
    ),
    (
        "SS2-MSH-9-STRUCTURE",
        "warning",
        "MSH-9.3 message structure missing or unexpected",
        "spec §2 (partly [I])",
    ),
    ("SS2-MSH-12", "error", "MSH-12 version is not 2.5", "spec §3.2, §6.5"),
    ("SS2-MSH-18", "error", "MSH-18 does not declare ISO IR87", "spec §3.2, §6.5"),
    ("SS2-MSH-18-VARIANT", "warning", "MSH-18 ~ISOIR87 / ISO IR87 instead of ~ISO IR87", "spec §3.2"),
    ("SS2-MSH-20", "error", "MSH-20 is not ISO 2022-1994", "spec §3.2, §6.5"),
    ("SS2-MSH-20-VARIANT", "warning", "MSH-20 ISO2022-1994 instead of ISO 2022-1994", "spec §3.2"),
    ("SS2-MSH-21", "warning", "MSH-21 missing or not the SS-MIX2 profile", "spec §3.2 [V-s]"),
    # PID
    (
        "SS2-PID-3-ID",
        "error",
        "PID-3.1 differs from the patient-ID folder (misfiled record)",
        "spec §6.6; issue 16",
    ),
    ("SS2-PID-3-PI", "warning", "PID-3 lacks the identifier type PI (^^^^PI)", "spec §3.3"),
    ("SS2-PID-5-NAME", "error", "PID-5 lacks a kanji (I) or a kana (P) repetition", "spec §3.3, §6.6"),
    # content
    (
        "SS2-CAREDATE",
        "error",
        "date folder differs from the message's care-date field",
        "spec §1.2, §1.3, §6.7",
    ),
    ("SS2-CODE-JC10", "error", "JC10 code is not 17 characters \\d[A-Z]\\d{15}", "spec §5.3, §6.10"),
    ("SS2-CODE-HOT", "error", "HOT code has the wrong number of digits", "spec §5.1, §6.10"),
    ("SS2-CODE-MDCDX2", "error", "MDCDX2 code is neither 8 digits nor 4 alphanumerics", "spec §5.2, §6.10"),
    ("SS2-CODE-I10", "error", "I10 code is not an ICD-10 code without the dot", "spec §5.2, §6.10"),
    ("SS2-OBX-2-TYPE", "error", "OBX-2 in OML-11 is not NM, ST or CWE", "spec §3.3, §6.11"),
    ("SS2-NM-VALUE", "error", "NM value is not a decimal number", "spec §6.11 (S2 checkNumericFields)"),
    # field usage per data type (synthetic/data/ssmix2/usage.csv; each row cites its source)
    (
        "SS2-FIELD-REQUIRED",
        "error",
        "a field the data type requires (R) is empty",
        "usage.csv (S2 HL7_SEGMENT.json ssmix2-required; JAHIS message tables)",
    ),
    (
        "SS2-FIELD-NOT-USED",
        "warning",
        "a field the data type does not use (N) is valued",
        "usage.csv (S2 HL7_SEGMENT.json ssmix2-required; JAHIS message tables)",
    ),
    (
        "SS2-FIELD-TYPE",
        "error",
        "an SI/NM/DT/TM/TS field does not have its data type's form",
        "usage.csv types; HL7 v2.5 ch. 2A",
    ),
    (
        "SS2-FIELD-LENGTH",
        "warning",
        "a field repetition is longer than the table's maximum",
        "usage.csv lengths; HL7 v2.5 §2.5.3.2",
    ),
]

RULES: Mapping[str, RuleInfo] = MappingProxyType({r[0]: RuleInfo(*r) for r in _RULES})


def finding(rule: str, path: str, message: str) -> Finding:
    """A finding with the rule's own severity (a KeyError here is a bug: every rule is catalogued)."""
    return Finding(rule, RULES[rule].severity, path, message)


DATA_TYPES: tuple[str, ...] = (
    *(f"ADT-{n}" for n in ("00", "01", "12", "21", "22", "31", "32", "41", "42", "51", "52", "61")),
    "PPR-01",
    "OMD",
    *(f"OMP-{n}" for n in ("01", "02", "11", "12")),
    "OML-01",
    "OML-11",
    *(f"OMG-{n}" for n in ("01", "02", "03", "11", "12", "13")),
)

# data type -> MSH-9 type^event; cancel events stay under the data type they cancel (spec §1.5, §2).
EVENTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "ADT-00": ("ADT^A08", "ADT^A23"),
        "ADT-01": ("ADT^A54", "ADT^A55"),
        "ADT-12": ("ADT^A04",),
        "ADT-21": ("ADT^A14", "ADT^A27"),
        "ADT-22": ("ADT^A01", "ADT^A11"),
        "ADT-31": ("ADT^A21", "ADT^A52"),
        "ADT-32": ("ADT^A22", "ADT^A53"),
        "ADT-41": ("ADT^A15", "ADT^A26"),
        "ADT-42": ("ADT^A02", "ADT^A12"),
        "ADT-51": ("ADT^A16", "ADT^A25"),
        "ADT-52": ("ADT^A03", "ADT^A13"),
        "ADT-61": ("ADT^A60",),
        "PPR-01": ("PPR^ZD1",),
        "OMD": ("OMD^O03",),
        "OMP-01": ("RDE^O11",),
        "OMP-02": ("RDE^O11",),
        "OMP-11": ("RAS^O17",),
        "OMP-12": ("RAS^O17",),
        "OML-01": ("OML^O33",),
        "OML-11": ("OUL^R22",),
        "OMG-01": ("OMG^O19",),
        "OMG-02": ("OMG^O19",),
        "OMG-03": ("OMG^O19",),
        "OMG-11": ("OMI^Z23",),
        "OMG-12": ("OMI^Z23",),
        "OMG-13": ("ORU^R01",),
    }
)

# MSH-9.3 per event: spec §2 (samples [V-s]; the cancel structures are HL7 v2.5 table 0354, spec [I]).
STRUCTURES: Mapping[str, str] = MappingProxyType(
    {
        "ADT^A08": "ADT_A01", "ADT^A23": "ADT_A21", "ADT^A54": "ADT_A54", "ADT^A55": "ADT_A52",
        "ADT^A04": "ADT_A01", "ADT^A14": "ADT_A05", "ADT^A27": "ADT_A21", "ADT^A01": "ADT_A01",
        "ADT^A11": "ADT_A09", "ADT^A21": "ADT_A21", "ADT^A52": "ADT_A52", "ADT^A22": "ADT_A21",
        "ADT^A53": "ADT_A52", "ADT^A15": "ADT_A15", "ADT^A26": "ADT_A21", "ADT^A02": "ADT_A02",
        "ADT^A12": "ADT_A12", "ADT^A16": "ADT_A16", "ADT^A25": "ADT_A21", "ADT^A03": "ADT_A03",
        "ADT^A13": "ADT_A01", "ADT^A60": "ADT_A60", "PPR^ZD1": "PPR_ZD1", "OMD^O03": "OMD_O03",
        "RDE^O11": "RDE_O11", "RAS^O17": "RAS_O17", "OML^O33": "OML_O33", "OUL^R22": "OUL_R22",
        "OMG^O19": "OMG_O19", "OMI^Z23": "OMI_Z23", "ORU^R01": "ORU_R01",
    }
)  # fmt: skip

# event -> (segment, field number) holding the 診療日; None: stored under "-" (spec §1.3, S2 SSMIX_CAREDATE).
CARE_DATE: Mapping[str, tuple[str, int] | None] = MappingProxyType(
    {
        "ADT^A08": None, "ADT^A23": None, "ADT^A54": None, "ADT^A55": None, "ADT^A60": None,
        "PPR^ZD1": None,
        "ADT^A04": ("PV1", 44), "ADT^A01": ("PV1", 44), "ADT^A11": ("PV1", 44),
        "ADT^A14": ("PV2", 8), "ADT^A27": ("PV2", 8), "ADT^A15": ("PV2", 8), "ADT^A26": ("PV2", 8),
        "ADT^A21": ("EVN", 6), "ADT^A52": ("EVN", 6), "ADT^A22": ("EVN", 6),
        "ADT^A02": ("EVN", 6), "ADT^A12": ("EVN", 6),
        "ADT^A53": ("PV2", 47),
        "ADT^A16": ("PV2", 9), "ADT^A25": ("PV2", 9),
        "ADT^A03": ("PV1", 45), "ADT^A13": ("PV1", 45),
        "OMD^O03": ("ORC", 9), "RDE^O11": ("ORC", 9), "OML^O33": ("ORC", 9), "OMG^O19": ("ORC", 9),
        "RAS^O17": ("RXA", 3),
        "OUL^R22": ("SPM", 17),
        "OMI^Z23": ("OBR", 7), "ORU^R01": ("OBR", 7),
    }
)  # fmt: skip

NO_ORDER = "999999999999999"
