"""Facility code check digits, romanisation, and the bundled data tables' own checkers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synthetic import tables
from synthetic.codes import care_code, is_valid_care_code, is_valid_medical_code, medical_code, mod10_w21
from synthetic.names import kana_to_romaji

DATA = Path(__file__).parents[1] / "synthetic" / "data"


def test_mod10_weights_2_1_from_the_right() -> None:
    # 01 0001: digits from the right 1,0,0,0,1,0 weighted 2,1,2,1,2,1 -> 2+0+0+0+2+0 = 4 -> check 6
    assert mod10_w21("010001") == 6
    # 12 3456: 6·2=12→1+2, 5, 4·2=8, 3, 2·2=4, 1 → 3+5+8+3+4+1 = 24 → check 6
    assert mod10_w21("123456") == 6
    assert medical_code("17", "medical", 1, 1) == "1710100016"
    assert medical_code("17", "pharmacy", 12, 3456) == "1741234566"


@given(st.integers(0, 99), st.integers(0, 9999), st.sampled_from(["medical", "dental", "pharmacy"]))
def test_medical_codes_validate_and_any_digit_change_is_caught(area: int, number: int, table: str) -> None:
    code = medical_code("17", table, area, number)
    assert is_valid_medical_code(code)
    for position in range(3, 10):
        for digit in "0123456789":
            if digit != code[position]:
                assert not is_valid_medical_code(code[:position] + digit + code[position + 1 :])


@given(st.integers(0, 9), st.integers(0, 999_999))
def test_care_codes_validate(division: int, serial: int) -> None:
    code = care_code("17", division, serial)
    assert len(code) == 10
    assert is_valid_care_code(code)


@pytest.mark.parametrize(
    ("kana", "romaji"),
    [
        ("サトウ", "Sato"),
        ("オオノ", "Ono"),
        ("ヤマダ", "Yamada"),
        ("キョウコ", "Kyoko"),
        ("シュンイチ", "Shunichi"),
        ("ハットリ", "Hattori"),
        ("ホッチ", "Hotchi"),
        ("ナンバ", "Namba"),
        ("ジュンコ", "Junko"),
        ("チヒロ", "Chihiro"),
        ("ユウタ", "Yuta"),
        ("リョウ", "Ryo"),
    ],
)
def test_passport_hepburn(kana: str, romaji: str) -> None:
    assert kana_to_romaji(kana) == romaji


def test_every_table_reading_romanises() -> None:
    for s in (*tables.surnames(), *tables.surname_variants()):
        assert kana_to_romaji(s.kana).isascii()
    for g in tables.given_names():
        assert kana_to_romaji(g.kana).isascii()


@pytest.mark.parametrize("script", ["codes/check_codes.py", "codes/check_dx.py", "names/check_names.py"])
def test_bundled_table_checkers_pass(script: str) -> None:
    path = DATA / script
    result = subprocess.run(
        [sys.executable, path.name], cwd=path.parent, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_geography_tables_are_consistent() -> None:
    munis = {m.jis_code: m for m in tables.municipalities()}
    assert len(munis) == 19
    assert {m.medical_area for m in munis.values()} == {"南加賀", "石川中央", "能登中部", "能登北部"}
    for row in tables.postcodes():
        assert row.jis_code in munis
        assert munis[row.jis_code].name == row.municipality
        assert len(row.postcode) == 7
        assert row.postcode[:2] in ("92", "93")
