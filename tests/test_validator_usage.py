"""The field-usage table (R/RE/C/O/N per data type), the run options and the writer's coverage.

The per-rule fixtures (field missing, wrongly present, malformed, too long) live with the other rules in
tests/test_validator.py; this module checks the table itself and the run options.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from synthetic import tables
from synthetic.ssmix2.layout import DATA_TYPES
from synthetic.ssmix2.messages import UNCODED_DISEASE
from synthetic.validator import RULES, ValidatorConfig, rules_listing, validate_storage, write_junit
from synthetic.validator.usage import checks_for, load_table, parse_table
from tests import ssmix2_cases as cases
from tests.test_validator import FIXTURES, GOOD

runner = CliRunner()
HEADER = "segment,seq,name,type,length,usage,source\n"


def test_table_rows_parse_and_cite_a_source() -> None:
    rows = load_table()
    assert len(rows) > 250
    for row in rows:
        assert row.source.startswith("S2 "), row
        assert row.first <= row.last
        assert row.usage, row
    # the two rows the issue names: TQ1-9 R in every OMG, RE in OML-01, N in OMP; ZPR-2 R
    tq1_9 = next(r for r in rows if r.segment == "TQ1" and r.first == 9)
    assert {t: tq1_9.usage_for(t) for t in ("OMG-01", "OMG-13", "OML-01", "OMP-01")} == {
        "OMG-01": "R",
        "OMG-13": "R",
        "OML-01": "RE",
        "OMP-01": "N",
    }
    zpr_2 = next(r for r in rows if r.segment == "ZPR" and r.first == 2)
    assert zpr_2.usage_for("PPR-01") == "R"
    # the overrides say why they differ from S2
    overridden = [r for r in rows if "overridden" in r.source]
    assert {(r.segment, r.first) for r in overridden} == {("MSH", 21), ("OBX", 7), ("OBX", 14)}


def test_rows_for_named_types_do_not_apply_to_others() -> None:
    """OBX rows name their data types; an ADT-00 with height/weight OBX is not described by them."""
    assert "OBX" not in checks_for("ADT-00")
    assert "OBX" in checks_for("OML-11")
    required = [seq for seq, _ in checks_for("ADT-00")["PID"].required]
    assert required == [3, 5, 7, 8]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('TQ1,9,Priority,CWE,250,"OMG-01=X",S2 TQ1[9]\n', "usage 'X'"),
        ('TQ1,9,Priority,CWE,250,"OMG-99=R",S2 TQ1[9]\n', "unknown data type 'OMG-99'"),
        ('TQ1,9,Priority,CWE,250,"OMG-01=R;OMG-01=N",S2 TQ1[9]\n', "given twice"),
    ],
)
def test_malformed_table_rows_are_refused(body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_table("# comment\n" + HEADER + body)


def test_every_data_type_the_writer_emits_has_rows_for_its_segments() -> None:
    """Every (data type, segment) the encoders write is described by the table, and passes it."""
    seen: set[str] = set()
    for name in cases.cases():
        built = cases.build(name)
        seen.add(built.data_type)
        described = checks_for(built.data_type)
        segments = {line.split("|", 1)[0] for line in built.text.split("\r") if line}
        assert segments <= set(described), (name, segments - set(described))
    assert seen == set(DATA_TYPES)


def test_written_messages_pass_the_table(tmp_path: Path) -> None:
    """The golden messages stored as files: no R empty, no N valued, types and lengths right."""
    from synthetic.ssmix2.layout import FileName

    for n, name in enumerate(sorted(cases.cases())):
        built = cases.build(name)
        fn = FileName(cases.LOCAL_ID, built.care_date, built.data_type, built.order_no,
                      f"2026030209{n:02d}00000", built.department, "1")  # fmt: skip
        target = tmp_path / fn.relative_dir() / str(fn)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(built.text.encode("iso2022_jp"))
    report = validate_storage(tmp_path, jobs=1, config=ValidatorConfig(strict=True))
    usage_rules = {r for r in RULES if r.startswith("SS2-FIELD-")}
    assert [f for f in report.findings if f.rule in usage_rules] == []


def test_ppr_uses_the_uncoded_number_only_where_no_code_was_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every diagnoses.csv row has a verified 管理番号 now, so the fallback is tested on a row without."""
    text = cases.build("PPR-01").text
    assert "ZPR||20083904^脳梗塞^MDCDX2|||K5PV^脳梗塞^MDCDX2" in text  # verified (支払基金 傷病名マスター)
    assert "ZPR||20054174^胃炎^MDCDX2|||TSQF^胃炎^MDCDX2||疑い" in text  # verified: its own number
    assert UNCODED_DISEASE not in text
    table = dict(tables.diagnoses())
    table["cerebral_infarction"] = dataclasses.replace(table["cerebral_infarction"], medis_code="")
    monkeypatch.setattr(tables, "diagnoses", lambda: table)
    text = cases.build("PPR-01").text
    assert f"PRB|AD|20260302093500|{UNCODED_DISEASE}^脳梗塞^MDCDX2|0001|" in text  # no verified 管理番号
    assert f"ZPR||{UNCODED_DISEASE}^脳梗塞^MDCDX2|||K5PV^脳梗塞^MDCDX2" in text
    assert "ZPR||20061593^高血圧症^MDCDX2|||UHGQ^高血圧症^MDCDX2" in text  # the others keep theirs


def test_stroke_admission_imaging_is_stat_and_the_rest_routine() -> None:
    assert "TQ1|1||||||20260302093500||S^^HL70485\r" in cases.build("OMG-01-stroke-urgent").text
    for name in ("OMG-01", "OMG-02", "OMG-03", "OMG-11", "OMG-12", "OMG-13", "OML-01"):
        assert "||R^^HL70485\r" in cases.build(name).text, name


def test_skip_drops_the_rule_and_says_so(tmp_path: Path) -> None:
    root = FIXTURES / "SS2-FIELD-NOT-USED"
    plain = validate_storage(root, jobs=1)
    assert {f.rule for f in plain.findings} == {"SS2-FIELD-NOT-USED"}
    skipped = validate_storage(root, jobs=1, config=ValidatorConfig.from_options(["SS2-FIELD-NOT-USED"]))
    assert skipped.findings == []
    assert skipped.skipped == ("SS2-FIELD-NOT-USED",)
    assert skipped.to_json()["skipped_rules"] == ["SS2-FIELD-NOT-USED"]
    junit = tmp_path / "junit.xml"
    write_junit(skipped, junit)
    suite = ET.parse(junit).getroot()
    case = next(c for c in suite.iter("testcase") if c.get("name", "").startswith("SS2-FIELD-NOT-USED:"))
    assert case.find("skipped") is not None
    assert suite.get("skipped") == "1"


def test_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    root = FIXTURES / "SS2-FIELD-LENGTH"
    plain = validate_storage(root, jobs=1)
    assert (plain.errors, plain.warnings) == (0, 1)
    strict = validate_storage(root, jobs=1, config=ValidatorConfig(strict=True))
    assert (strict.errors, strict.warnings) == (0 + 1, 0)
    assert strict.to_json()["strict"] is True
    junit = tmp_path / "junit.xml"
    write_junit(strict, junit)
    assert ET.parse(junit).getroot().get("failures") == "1"


def test_unknown_skip_rule_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="SS2-NO-SUCH-RULE"):
        ValidatorConfig.from_options(["SS2-FIELD-TYPE,SS2-NO-SUCH-RULE"])
    assert ValidatorConfig.from_options(["SS2-FIELD-TYPE, SS2-FIELD-LENGTH"]).skip == {
        "SS2-FIELD-TYPE",
        "SS2-FIELD-LENGTH",
    }


def test_rules_listing_has_every_rule_with_its_source() -> None:
    listing = rules_listing()
    assert [r[0] for r in listing] == sorted(RULES)
    assert all(source for _, _, _, source in listing)
    assert RULES["SS2-PID-3-ID"].severity == "error"  # misfiled record (issue 16)


def test_cli_flags() -> None:
    listed = runner.invoke(app, ["validate-storage", "--rules"])
    assert listed.exit_code == 0, listed.output
    assert "SS2-FIELD-REQUIRED\terror\t" in listed.output
    assert len(listed.output.splitlines()) == len(RULES)
    root = str(FIXTURES / "SS2-FIELD-LENGTH")
    assert runner.invoke(app, ["validate-storage", root, "--json"]).exit_code == 0  # a warning
    strict = runner.invoke(app, ["validate-storage", root, "--json", "--strict"])
    assert strict.exit_code == 1
    assert '"strict": true' in strict.output
    skipped = runner.invoke(
        app, ["validate-storage", root, "--json", "--strict", "--skip", "SS2-FIELD-LENGTH"]
    )
    assert skipped.exit_code == 0, skipped.output
    assert '"SS2-FIELD-LENGTH"' in skipped.output
    text = runner.invoke(app, ["validate-storage", root, "--skip", "SS2-FIELD-LENGTH", "--strict"])
    assert "rules skipped (--skip): SS2-FIELD-LENGTH" in text.output
    assert "--strict: warnings counted as errors" in text.output
    bad = runner.invoke(app, ["validate-storage", str(GOOD), "--skip", "SS2-TYPO"])
    assert bad.exit_code == 2
    assert "SS2-TYPO" in bad.output
