"""Real-format facility codes.

医療機関コード (10 digits) = 都道府県番号 (2) + 点数表番号 (1: 1 医科, 3 歯科, 4 調剤) + 郡市区番号 (2)
+ 医療機関番号 (4) + 検証番号 (1). The check digit follows the rule MHLW uses for these numbers
("モジュラス10・ウエイト2・1分割"): over the 6 digits 郡市区番号 + 医療機関番号, weight the
right-most digit 2,
the next 1, alternating; add the digits of each product; the check digit is (10 − sum mod 10) mod 10.
[Choice] The alignment of the weights (from the right) is our reading of the rule, the same as for
保険者番号; the 郡市区番号 per municipality is synthetic (its order in the JIS code list).

介護保険事業所番号 (10 digits) = 都道府県番号 (2) + 事業所区分 (1) + serial (6) + check digit (1), with the
same modulus-10 rule over the 7 digits before it. [Choice] The 区分 digits used here — 1 居宅サービス事業所,
5 介護老人保健施設, 7 介護老人福祉施設 — and the check digit on 介護 numbers are assumptions, not verified.
"""

from __future__ import annotations

POINT_TABLE = {"medical": "1", "dental": "3", "pharmacy": "4"}


def mod10_w21(digits: str) -> int:
    """Modulus 10, weights 2-1 from the right, products split into digits."""
    total = 0
    for position, ch in enumerate(reversed(digits)):
        product = int(ch) * (2 if position % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


def medical_code(prefecture: str, table: str, area: int, number: int) -> str:
    if table not in POINT_TABLE:
        raise ValueError(f"unknown point table {table!r}")
    if not (0 <= area < 100 and 0 <= number < 10000):
        raise ValueError("area must be 2 digits and number 4 digits")
    body = f"{area:02d}{number:04d}"
    return f"{prefecture}{POINT_TABLE[table]}{body}{mod10_w21(body)}"


def care_code(prefecture: str, division: int, serial: int) -> str:
    if not (0 <= division < 10 and 0 <= serial < 10**6):
        raise ValueError("division must be 1 digit and serial 6 digits")
    body = f"{prefecture}{division}{serial:06d}"
    return f"{body}{mod10_w21(body[2:])}"


def is_valid_medical_code(code: str) -> bool:
    return (
        len(code) == 10
        and code.isdigit()
        and code[2] in POINT_TABLE.values()
        and mod10_w21(code[3:9]) == int(code[9])
    )


def is_valid_care_code(code: str) -> bool:
    return len(code) == 10 and code.isdigit() and mod10_w21(code[2:9]) == int(code[9])


def patient_id_oid(arc: str, facility_code: str) -> str:
    return f"{arc}{facility_code}"
