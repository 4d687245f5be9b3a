"""The scenario format: every problem names file, line and key; the shipped suites load; selection; schema.

No hub here: these are the loader's and the matcher's own tests (the engine's are in test_scenarios_engine).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.scenarios import FormatError, discover, parse_scenario, schema, select
from harness.scenarios.model import ACTION_MODELS
from harness.scenarios.subjects import MISSING, HttpObservation, Latency, check, observe, parse_subject

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"

GOOD = """\
schema_version: 1
id: good-one
title: a good scenario
tags: [smoke]
remarks: a single remark is a list of one
given:
  patients:
    p: {fresh: true}
  facilities:
    A: {disclosing: true}
    C: {kind: clinic}
steps:
  - feed: {from: A, patient: p}
    capture: {tag: MSA-2}
    expect:
      - id: ITI8-003
        that: {MSA-1: AA}
  - pix_query: {from: C, patient: p, at: A, query_tag: "${tag}"}
    expect:
      - id: ITI9-x
        that: {QAK-1: "${tag}", "PID-3[*].1": {set: []}}
"""


def problems(text: str, source: str = "s.yaml") -> list[tuple[int | None, str, str]]:
    with pytest.raises(FormatError) as info:
        parse_scenario(text, source)
    return info.value.problems


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_good_scenario_loads() -> None:
    loaded = parse_scenario(GOOD, "good.yaml", suite="demo")
    sc = loaded.scenario
    assert (sc.id, sc.remarks, loaded.suite, sc.assertion_count) == (
        "good-one",
        ["a single remark is a list of one"],
        "demo",
        2,
    )
    assert [s.kind for s in sc.steps] == ["feed", "pix_query"]
    assert loaded.where("steps", 1, "expect", 0) == f"good.yaml:{line_of(GOOD, 'ITI9-x')}"


@pytest.mark.parametrize(
    ("old", "new", "needle", "path", "message"),
    [
        (
            "feed: {from: A, patient: p}",
            "feed: {from: A, patient: p, evnt: A04}",
            "evnt",
            "steps.0.feed.evnt",
            "unknown key",
        ),
        (
            "  - feed: {from: A, patient: p}",
            "  - fed: {from: A, patient: p}",
            "fed:",
            "steps.0.fed",
            "unknown key",
        ),
        ("tags: [smoke]", "tags: [smoke]\nowner: me", "owner", "owner", "unknown key"),
        (
            "feed: {from: A, patient: p}",
            "feed: {from: A, patient: p, version: '2.4'}",
            "'2.4'",
            "steps.0.feed.version",
            "'2.5' or '2.3.1'",
        ),
        (
            "{MSA-1: AA}",
            "{MSA-1: {one_off: [AA]}}",
            "one_off",
            "steps.0.expect.0.that.MSA-1.one_off",
            "unknown key",
        ),
        ("id: ITI8-003", "id: iti8 lower", "iti8 lower", "steps.0.expect.0.id", "pattern"),
        ("{MSA-1: AA}", "{MSA-one: AA}", "MSA-one", "steps.0.expect.0.that.MSA-one", "unknown subject"),
        ("schema_version: 1", "schema_version: 2", "schema_version", "schema_version", "1"),
        (
            "    p: {fresh: true}",
            "    p: {fresh: true, consent: everyone}",
            "everyone",
            "given.patients.p.consent.0",
            "all",
        ),
        (
            "    A: {disclosing: true}",
            "    A: {disclosing: maybe}",
            "maybe",
            "given.facilities.A.disclosing",
            "boolean",
        ),
    ],
)
def test_schema_errors_name_the_line_and_key(
    old: str, new: str, needle: str, path: str, message: str
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    found = problems(text)
    assert any(p == path and message in m and line == line_of(text, needle) for line, p, m in found), found


def test_a_step_has_exactly_one_action() -> None:
    text = GOOD.replace(
        "  - feed: {from: A, patient: p}", "  - feed: {from: A, patient: p}\n    wait: {ms: 1}"
    )
    assert any("exactly one action" in m and line == line_of(text, "- feed") for line, _, m in problems(text))
    none = GOOD.replace("  - feed: {from: A, patient: p}\n", "  - name: nothing\n")
    assert any("needs one action key" in m for _, _, m in problems(none))


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("feed: {from: A, patient: p}", "feed: {from: B, patient: p}", "from: B", "'B' is not a facility"),
        ("feed: {from: A, patient: p}", "feed: {from: A, patient: q}", "patient: q", "'q' is not a patient"),
        ('{QAK-1: "${tag}"', '{QAK-1: "${tagg}"', "tagg", "'tagg' is no given patient"),
        ('{QAK-1: "${tag}"', '{QAK-1: "${p.local_id}"', "p.local_id", "say at which facility"),
        ('{QAK-1: "${tag}"', '{QAK-1: "${p.shoe_size}"', "shoe_size", "patient attribute must be one of"),
        ('{QAK-1: "${tag}"', '{QAK-1: "${A.code@A}"', "A.code@A", "@facility only follows"),
        ("{MSA-1: AA}", "{status: 200}", "status", "does not apply to a feed step"),
        (
            "    A: {disclosing: true}",
            "    A: {disclosing: true, local_id_of: r}",
            "local_id_of: r",
            "'r', which is not a given patient",
        ),
    ],
)
def test_semantic_errors_name_the_line(old: str, new: str, needle: str, message: str) -> None:
    text = GOOD.replace(old, new, 1)
    found = problems(text)
    assert any(message in m and line == line_of(text, needle) for line, _, m in found), found


def test_a_capture_is_only_visible_to_later_steps() -> None:
    same_step = GOOD.replace("        that: {MSA-1: AA}", '        that: {MSA-1: "${tag}"}')
    assert any("'tag' is no given patient" in m for _, _, m in problems(same_step))
    earlier = GOOD.replace("    capture: {tag: MSA-2}\n", "").replace(
        "patient: p, at: A, query_tag", "patient: p, at: A, local_id: x, query_tag"
    )
    assert any("'tag' is no given patient" in m and p.startswith("steps.1") for _, p, m in problems(earlier))


def test_duplicate_keys_and_yaml_syntax_name_the_line() -> None:
    text = GOOD.replace("title: a good scenario", "title: a good scenario\ntitle: twice")
    assert problems(text) == [(line_of(text, "title: twice"), "title", "duplicate key")]
    broken = GOOD.replace("tags: [smoke]", "tags: [smoke")
    [(line, _, message)] = problems(broken)
    assert "YAML syntax" in message
    assert line is not None


def test_every_error_is_reported_at_once_with_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "a.yaml").write_text(
        GOOD.replace("evnt", "x").replace("{MSA-1: AA}", "{MSA-1: AA, x: 1}")
    )
    (tmp_path / "suite" / "b.yaml").write_text(GOOD.replace("title:", "titel:"))
    (tmp_path / "suite" / "c.yaml").write_text(GOOD)
    (tmp_path / "suite" / "d.yaml").write_text(GOOD)  # same id as c
    with pytest.raises(FormatError) as info:
        discover(tmp_path)
    text = str(info.value)
    assert re.search(
        r"a\.yaml:\d+: steps\.0\.expect\.0\.that\.x: invalid key: Value error, unknown subject", text
    ), text
    assert re.search(r"b\.yaml:3: titel: unknown key", text), text
    assert re.search(
        r"b\.yaml:\d*:? ?title: required key is missing|b\.yaml: title: required key is missing", text
    ), text
    assert re.search(r"d\.yaml:2: id: id 'good-one' is also used by .*c\.yaml", text), text


def test_cli_check_prints_file_line_key_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("patient: p}", "patient: p, event: A4}", 1))
    result = CliRunner().invoke(app, ["scenarios", "check", str(bad), "--scenarios", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        f"{bad}:{line_of(bad.read_text(), 'A4')}: steps.0.feed.event: String should match pattern"
        in result.output
    )
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    ok = CliRunner().invoke(app, ["scenarios", "check", str(good), "--scenarios", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "ok: 1 scenarios, 2 assertions" in ok.output


# ------------------------------------------------------------------------------------------- shipped suites


def test_the_shipped_suites_load_and_are_big_enough() -> None:
    found = discover(SCENARIOS)
    assert {s.suite for s in found} >= {"conformance"}
    assertions = sum(s.scenario.assertion_count for s in found)
    assert assertions >= 80, assertions
    without_http = select(found, tags=["!needs-http"])
    assert sum(s.scenario.assertion_count for s in without_http) >= 80
    for s in found:
        assert s.scenario.remarks, f"{s.path}: a scenario says where its expectations come from"


def test_the_conformance_suite_covers_the_error_table() -> None:
    """docs/hub-protocols.md §1.2, row by row: each case has a scenario asserting its expected answer."""
    found = {s.id: s.scenario for s in discover(SCENARIOS, [SCENARIOS / "conformance"])}
    ids = {e.id for sc in found.values() for step in sc.steps for e in step.expect}
    table = {
        "iti8-unknown-domain": "ITI8-unknown-domain",  # OHIE-CR-03
        "iti8-other-source-domain": "ITI8-other-source-domain",  # OHIE-CR-04
        "iti8-empty-authority": "ITI8-unresolvable-authority-text",  # OHIE-CR-01
        "iti9-other-domain-nf": "ITI9-known-id-other-domain-nf",  # openempi Case2, ITI45-20
        "iti9-unknown-patient": "ITI9-unknown-patient-location",  # MESA 10502
        "iti9-unknown-source-domain": "ITI9-unknown-source-domain-location",  # MESA 10503
        "iti9-unknown-wanted-domain": "ITI9-unknown-wanted-domain",  # ipf err-2
        "iti21-unknown-domain": "ITI21-unknown-domain-location",  # openempi ITI21PdqQueryCase3
        "iti21-no-match": "ITI21-no-match",  # MESA 11312
    }
    for scenario, assertion in table.items():
        assert scenario in found, scenario
        assert assertion in {e.id for step in found[scenario].steps for e in step.expect}
    needed = (
        "ITI21-continuation-pointer",
        "ITI21-cancel-ack",
        "ITI8-merge-retires-subsumed",
        "ITI8-002",
        "CHARSET-iso2022jp-delimiter-bytes",
        "CHARSET-reply-utf8",
        "ITI8-ack-correlation",
        "HUB-answers-next-message",
        "MLLP-garbage-closes-connection",
    )
    for needed_id in needed:
        assert needed_id in ids, needed_id


def test_selection_by_suite_tag_and_keyword() -> None:
    found = discover(SCENARIOS)
    iti9 = select(found, tags=["iti-9"])
    assert iti9
    assert all("iti-9" in s.scenario.tags for s in iti9)
    no_http = select(found, tags=["iti-9", "!needs-http"])
    assert no_http
    assert all("needs-http" not in s.scenario.tags for s in no_http)
    assert len(no_http) < len(iti9)
    assert select(found, tags=["iti-9,iti-21"]) == select(found, tags=["iti-9", "iti-21"])
    k = select(found, keyword="iti21 and (cancel or continuation) and not unknown")
    assert {s.id for s in k} == {"iti21-cancel", "iti21-continuation"}
    assert select(found, keyword="needs-http") == select(found, tags=["needs-http"])
    assert select(found, suites=["conformance"]) == [s for s in found if s.suite == "conformance"]
    assert select(found, suites=["nowhere"]) == []
    with pytest.raises(FormatError):
        select(found, keyword="iti9 and (")


# ------------------------------------------------------------------------------------------- schema


def test_json_schema_is_exported_for_editors() -> None:
    result = CliRunner().invoke(app, ["scenarios", "schema"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    assert data == json.loads(json.dumps(schema()))
    assert set(data["required"]) == {"schema_version", "id", "title", "steps"}
    defs = data["$defs"]
    step = defs["Step"]
    assert {tuple(alt["required"]) for alt in step["oneOf"]} == {(kind,) for kind in ACTION_MODELS}
    assert set(ACTION_MODELS) <= set(step["properties"])
    for name in ("Step", "Feed", "PixQuery", "Expectation", "Matcher", "PatientSelector", "Login"):
        assert defs[name]["additionalProperties"] is False, name
    assert "from" in defs["Feed"]["properties"]  # the YAML names, not the Python ones
    assert "continue" in defs["PdqQuery"]["properties"]
    target = CliRunner().invoke(app, ["scenarios", "schema", "--target"])
    assert "supports" in json.loads(target.output)["properties"]


# ------------------------------------------------------------------------------------------- matchers


@pytest.mark.parametrize(
    ("ops", "actual", "ok"),
    [
        ({"equals": 5}, "5", True),
        ({"equals": "AE"}, "AA", False),
        ({"equals": True}, True, True),
        ({"one_of": ["AE", "AR"]}, "AR", True),
        ({"not": "AA"}, "AE", True),
        ({"present": True}, "", False),
        ({"present": False}, MISSING, True),
        ({"matches": "(?i)resolv"}, "could not be Resolved", True),
        ({"contains": "b"}, ["a", "b"], True),
        ({"excludes": "b"}, ["a", "b"], False),
        ({"set": ["b", "a"]}, ["a", "b"], True),
        ({"set": ["a"]}, ["a", "b"], False),
        ({"len": 2}, ["a", "b"], True),
        ({"ge": 2, "le": 3}, "3", True),
        ({"lt": 1}, "x", False),
        ({"equals": "x"}, MISSING, False),
        ({"erl": "QPD^1^3^1^4"}, "QPD^1^3^1^4", True),
        ({"erl": "QPD^1^3^1^4"}, "QPD^1^3^4^1", False),
        ({"erl": "QPD^1^4^1~QPD^1^4^2"}, "QPD^1^4^2", False),
    ],
)
def test_matchers(ops: dict[str, Any], actual: Any, ok: bool) -> None:
    assert (check(ops, actual) == []) is ok


def test_lenient_error_locations_accept_the_ohie_reading() -> None:
    assert check({"erl": "QPD^1^3^1^4"}, "QPD^1^3^4^1", strict_erl=False) == []
    assert check({"erl": "QPD^1^3^1^4"}, "QPD^1^4^1^4", strict_erl=False) == ["erl"]


def test_subjects_parse_or_say_why() -> None:
    s = parse_subject("PID#*-3[2].4.1")
    assert (s.segment, s.index, s.field, s.rep, s.comp, s.sub) == ("PID", "*", 3, 2, 4, 1)
    assert parse_subject("json:entries[*].source").path == "entries[*].source"
    for bad in ("PID-0", "pid-3", "json:", "count:pid", "what"):
        with pytest.raises(ValueError, match="unknown subject"):
            parse_subject(bad)


def test_json_paths_filter_index_from_the_end_and_hold_variables() -> None:
    body = {
        "sources": [{"facility": "A1", "status": "ok"}, {"facility": "B2", "status": "timeout"}],
        "entries": [{"source": "A1", "id": "e1"}, {"source": "A1", "id": "e2"}, {"source": "B2", "id": "e3"}],
        "start": "2026-11-20T10:00:00+09:00",
        "end": "2026-11-20T10:30:00+09:00",
    }
    obs = HttpObservation(200, {}, b"", 1.0, body)

    def seen(subject: str) -> Any:
        return observe(parse_subject(subject), obs)

    assert seen("json:sources[facility=B2].status") == ["timeout"]
    assert seen("json:entries[source=A1].id") == ["e1", "e2"]
    assert seen("json:entries[source=A1][-1].id") == "e2"
    assert seen("json:entries[source=Z9]") == []
    assert seen("json:entries[-4]") is MISSING
    assert seen("span:start..end") == 1800.0
    assert seen("span:start..nothing") is MISSING
    # a filter value may hold a variable: the subject is parsed again once it is substituted
    assert parse_subject("json:sources[facility=${H.code}].status").tokens[1] == (
        "filter",
        "facility",
        "${H.code}",
    )
    for bad in ("json:a..b", "json:.a", "json:a.", "json:[0]", "span:a", "latency.p0", "latency.median"):
        with pytest.raises(ValueError, match=r"JSON path|unknown subject|a dot"):
            parse_subject(bad)
    latency = Latency((5.0, 1.0, 3.0, 2.0, 4.0))
    assert [
        observe(parse_subject(f"latency.{s}"), obs, latency) for s in ("count", "p50", "p99", "max", "min")
    ] == [
        5,
        3.0,
        5.0,
        5.0,
        1.0,
    ]


PARAMS = """\
schema_version: 1
id: with-params
title: parameters and repeats
remarks: format test
params: {budget_ms: 50, reps: 10}
given:
  facilities:
    C: {kind: clinic}
steps:
  - pdq_query: {from: C, fields: {"@PID.5.1.1": 山田}}
    repeat: {count: "${param.reps}", warmup: 2}
    expect:
      - id: T-budget
        that: {latency.p95: {le: "${param.budget_ms}"}, "json:x": 1}
"""


def test_params_repeats_and_their_errors() -> None:
    assert parse_scenario(PARAMS.replace(', "json:x": 1', ""), "p.yaml").scenario.params == {
        "budget_ms": 50,
        "reps": 10,
    }
    found = problems(PARAMS)
    assert any("'json:x' does not apply to a pdq_query step" in m for _, _, m in found), found
    text = PARAMS.replace(', "json:x": 1', "").replace("${param.budget_ms}", "${param.budjet_ms}")
    found = problems(text)
    assert any(
        "not a parameter this scenario declares" in m and line == line_of(text, "budjet")
        for line, _, m in found
    )
    found = problems(PARAMS.replace(', "json:x": 1', "").replace('"${param.reps}"', '"many"'))
    assert any(p == "steps.0.repeat.count" for _, p, _ in found), found
    found = problems(PARAMS.replace(', "json:x": 1', "").replace('{le: "${param.budget_ms}"}', "{le: soon}"))
    assert any("neither a number nor a ${...} variable" in m for _, _, m in found), found
    found = problems(
        PARAMS.replace("  facilities:\n    C:", "  facilities:\n    param:").replace("from: C", "from: param")
    )
    assert any("reserved for built-in variables" in m for _, _, m in found), found
