"""The live network on the mini world: `rhin up` machinery, bootstrap, timeline and fetch through the hub.

One network (hub + gateway shards as real processes, links off so timing does not matter) is started for
the module and bootstrapped through the hub's interfaces. The timeline is checked against an oracle written
here from first principles — the world's SQLite (consent documents), world.json (disclosure, viewer rules)
and the files on disk — not from the hub's or the gateway's code: what each viewer may see is the set of
current files at disclosing facilities, in a category the source discloses and the viewer's kind may see,
where the consent covers source and viewer today and is not withdrawn.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from simulator.bootstrap import bootstrap, regional_ids
from simulator.gateway.entries import parse_entry_id
from simulator.hub.routes.records import TimelineReply
from simulator.network import Network, NetworkInfo

REPO = Path(__file__).resolve().parents[1]

# The oracle's own category table (docs/ssmix2.md §2; documents by their folder code).
CATEGORY = {
    **dict.fromkeys(
        [
            "ADT-00",
            "ADT-01",
            "ADT-12",
            "ADT-21",
            "ADT-22",
            "ADT-31",
            "ADT-32",
            "ADT-41",
            "ADT-42",
            "ADT-51",
            "ADT-52",
            "ADT-61",
        ],
        "patient_basics",
    ),
    "PPR-01": "diagnoses",
    "OMD": "other",
    "OMP-01": "prescription_orders",
    "OMP-11": "prescription_orders",
    "OMP-02": "injection_orders",
    "OMP-12": "injection_orders",
    "OML-01": "lab_orders",
    "OML-11": "lab_results",
    "OMG-01": "radiology_orders",
    "OMG-11": "radiology_orders",
    "OMG-02": "endoscopy_orders",
    "OMG-12": "endoscopy_orders",
    "OMG-03": "physiology_results",
    "OMG-13": "physiology_results",
    "RHDS01": "discharge_summaries",
    "RHRF01": "referral_letters",
    "RHPN01": "progress_notes",
    "RHNN01": "nursing_notes",
    "MFER-ECG12": "physiology_results",  # the MFER 12-lead ECG waveforms (生理検査, issue 16)
}


@pytest.fixture(scope="module")
def network(
    mini_world: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Network, NetworkInfo]]:
    root = tmp_path_factory.mktemp("network")
    net = Network(
        mini_world,
        data=root / "hub",
        network_file=root / "network.json",
        links=False,
        shards=2,
        scrypt_cost=4,
    )
    info = net.start()
    try:
        bootstrap(mini_world, info, net.data)
        yield net, info
    finally:
        net.stop()


@pytest.fixture(scope="module")
def world_doc(mini_world: Path) -> dict[str, Any]:
    return json.loads((mini_world / "world.json").read_text(encoding="utf-8"))


def _covers(pattern: str, listed: set[str], added: set[str], facility: str) -> bool:
    if pattern == "all":
        return True
    if pattern == "all_except":
        return facility not in listed
    return facility in listed or (pattern == "per_facility" and facility in added)


@dataclass(frozen=True)
class WorldConsent:
    """A world patient's consent as world.sqlite has it on ``today``, read from scratch (the oracle's own
    reading, not the hub's code)."""

    pattern: str
    signed_on: dt.date
    listed: set[str]
    added: set[str]
    withdrawn: bool
    local: dict[str, str]  # facility → local ID

    @classmethod
    def read(cls, world: Path, patient_index: int, today: dt.date) -> WorldConsent:
        db = sqlite3.connect(f"file:{world / 'world.sqlite'}?mode=ro", uri=True)
        try:
            form = db.execute(
                "SELECT form_id, pattern, signed_on FROM consent_forms WHERE patient_index=?",
                (patient_index,),
            ).fetchone()
            listed = {
                r[0]
                for r in db.execute(
                    "SELECT facility_code FROM consent_facilities WHERE form_id=?", (form[0],)
                )
            }
            added = {
                r[0]
                for r in db.execute(
                    "SELECT facility_code FROM consent_additions WHERE patient_index=? AND signed_on<=?",
                    (patient_index, today.isoformat()),
                )
            }
            withdrawn = db.execute(
                "SELECT 1 FROM consent_withdrawals WHERE patient_index=? AND withdrawn_on<=?",
                (patient_index, today.isoformat()),
            ).fetchone()
            local = dict(
                db.execute(
                    "SELECT facility_code, local_id FROM local_ids WHERE patient_index=?", (patient_index,)
                )
            )
        finally:
            db.close()
        return cls(form[1], dt.date.fromisoformat(form[2]), listed, added, bool(withdrawn), local)

    def active(self, today: dt.date) -> bool:
        return not self.withdrawn and self.signed_on <= today

    def covers(self, facility: str) -> bool:
        return _covers(self.pattern, self.listed, self.added, facility)


def known_to(world: Path, patient_index: int, viewer: str) -> bool:
    """May the viewer's facility learn the patient exists (issue 11): it holds a local ID, or the consent in
    force today covers it. (The world's patients hold no emergency grants.)"""
    today = dt.date.today()
    consent = WorldConsent.read(world, patient_index, today)
    return viewer in consent.local or (consent.active(today) and consent.covers(viewer))


def expected_entries(
    world: Path, doc: dict[str, Any], patient_index: int, viewer: str, user_kind: str
) -> set[tuple[str, str]]:
    """(source facility, path relative to the world dir) of every file the viewer may see, from scratch."""
    facilities = {f["code"]: f for f in doc["facilities"]}
    today = dt.date.today()
    consent = WorldConsent.read(world, patient_index, today)
    local = consent.local
    if not consent.active(today) or viewer not in local or not consent.covers(viewer):
        return set()
    rules = doc["viewer_rules"]
    kind_rule = rules["facilities"][facilities[viewer]["kind"]]
    user_rule = rules.get("users", {}).get(user_kind)
    out: set[tuple[str, str]] = set()
    for source, local_id in local.items():
        f = facilities[source]
        if f["network_role"] != "disclosing" or not consent.covers(source):
            continue

        def visible(category: str, f: dict[str, Any] = f) -> bool:
            return (
                category in f["disclosure"]
                and (kind_rule == "all" or category in kind_rule)
                and (user_rule is None or category in user_rule)
            )

        base = Path("storage", source, local_id[:3], local_id[3:6], local_id)
        for path in (world / base).glob("*/*/*"):
            fields = path.name.split("_")
            if fields[-1] == "1" and visible(CATEGORY[fields[2]]):
                out.add((source, str(path.relative_to(world))))
        ext = Path("extended", source, local_id[:3], local_id[3:6], local_id)
        for main in (world / ext).glob("*/*/*/main_document*"):
            type_code = main.parent.parent.name.split("^")[0]
            if main.parent.name.split("_")[-1] == "1" and visible(CATEGORY[type_code]):
                out.add((source, str(main.relative_to(world))))
        if visible("images"):
            out.update((source, path) for path in dicom_by_patient(world, source).get(local_id, ()))
    return out


@functools.cache
def dicom_by_patient(world: Path, source: str) -> dict[str, list[str]]:
    """PatientID → instance paths of one facility's PACS, read from each file's header."""
    found: dict[str, list[str]] = {}
    for dcm in sorted((world / "images" / source).glob("*/*.dcm")):
        patient = str(pydicom.dcmread(dcm, stop_before_pixels=True).PatientID)
        found.setdefault(patient, []).append(str(dcm.relative_to(world)))
    return found


def got_entries(entries: list[dict[str, Any]]) -> set[tuple[str, str]]:
    roots = {"hl7": "storage", "document": "extended", "image": "images"}
    out = set()
    for e in entries:
        ref = parse_entry_id(e["id"])
        out.add((e["source"], str(Path(roots[ref.kind], e["source"], ref.path))))
    return out


def login(info: NetworkInfo, facility: dict[str, Any], kind: str) -> httpx.Client:
    user = next(u for u in facility["users"] if u["viewer_kind"] == kind)
    reply = httpx.post(
        f"{info.base_url}/auth/login",
        json={"facility": facility["code"], "user_id": user["user_id"], "password": user["password"]},
    )
    assert reply.status_code == 200, reply.text
    return httpx.Client(
        base_url=info.base_url, headers={"Authorization": f"Bearer {reply.json()['token']}"}, timeout=30
    )


def patients_with_data(world: Path, doc: dict[str, Any], limit: int) -> list[tuple[int, str, list[str]]]:
    """Patients attending a disclosing facility and at least one other: (index, world ID, facility codes)."""
    disclosing = {f["code"] for f in doc["facilities"] if f["network_role"] == "disclosing"}
    db = sqlite3.connect(f"file:{world / 'world.sqlite'}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT p.patient_index, p.patient_id, group_concat(l.facility_code) FROM patients p"
        " JOIN local_ids l USING (patient_index) GROUP BY p.patient_index HAVING count(*) >= 2"
        " ORDER BY p.patient_index"
    ).fetchall()
    db.close()
    out = [(i, pid, codes.split(",")) for i, pid, codes in rows if disclosing & set(codes.split(","))]
    return out[:limit]


def test_network_is_up_and_the_file_says_where(
    network: tuple[Network, NetworkInfo], world_doc: dict[str, Any]
) -> None:
    net, info = network
    disclosing = {f["code"] for f in world_doc["facilities"] if f["network_role"] == "disclosing"}
    assert set(info.gateways) == disclosing
    assert httpx.get(f"{info.base_url}/health").json()["status"] == "ok"
    for gateway in info.gateways.values():
        assert httpx.get(f"{gateway['url']}/health").status_code == 200
    assert len(info.document["shards"]) == 2
    assert json.loads(net.network_file.read_text(encoding="utf-8"))["hub"]["mllp"]["port"] == info.mllp[1]


def test_timeline_matches_the_oracle(
    network: tuple[Network, NetworkInfo], mini_world: Path, world_doc: dict[str, Any]
) -> None:
    net, info = network
    facilities = {f["code"]: f for f in world_doc["facilities"]}
    rids = regional_ids(net.data)
    checked = nonempty = unrelated = 0
    for index, pid, codes in patients_with_data(mini_world, world_doc, 40):
        # Every facility the patient attends views (by kind of user), plus one they do not attend.
        outsider = next(c for c in facilities if c not in codes and facilities[c]["users"])
        for viewer in [*codes, outsider]:
            f = facilities[viewer]
            kind = (
                "physician"
                if any(u["viewer_kind"] == "physician" for u in f["users"])
                else f["users"][0]["viewer_kind"]
            )
            with login(info, f, kind) as client:
                reply = client.get(f"/patients/{rids[pid]}/timeline")
            if not known_to(mini_world, index, viewer):  # not told the patient exists (issue 11)
                assert (reply.status_code, reply.json()["detail"]["reason"]) == (404, "unknown-patient")
                assert not expected_entries(mini_world, world_doc, index, viewer, kind)
                unrelated += 1
                continue
            assert reply.status_code == 200, reply.text
            body = reply.json()
            TimelineReply.model_validate(body)  # the hand-built JSON is the documented shape
            want = expected_entries(mini_world, world_doc, index, viewer, kind)
            assert got_entries(body["entries"]) == want, (pid, viewer, body["sources"])
            assert all(s["status"] != "error" for s in body["sources"]), body["sources"]
            checked += 1
            nonempty += bool(want)
    assert checked >= 60
    assert nonempty >= 10  # the sample exercises real sharing, not only refusals
    assert unrelated >= 1  # and outsiders the hub does not even admit the patient to


def test_fetch_is_byte_identical(
    network: tuple[Network, NetworkInfo], mini_world: Path, world_doc: dict[str, Any]
) -> None:
    net, info = network
    facilities = {f["code"]: f for f in world_doc["facilities"]}
    rids = regional_ids(net.data)
    kinds: set[str] = set()
    for _, pid, codes in patients_with_data(mini_world, world_doc, 60):
        source = next(c for c in codes if facilities[c]["network_role"] == "disclosing")
        with login(info, facilities[source], "physician") as client:
            entries = client.get(f"/patients/{rids[pid]}/timeline").json()["entries"]
            for e in entries:
                if e["kind"] in kinds:
                    continue
                reply = client.get(f"/patients/{rids[pid]}/entries/{e['source']}/{e['id']}")
                assert reply.status_code == 200, reply.text
                (path,) = got_entries([e])
                assert reply.content == (mini_world / path[1]).read_bytes()
                kinds.add(e["kind"])
        if kinds == {"hl7", "document", "image"}:
            break
    assert kinds == {"hl7", "document", "image"}


def test_withdrawal_between_timeline_and_fetch_denies_the_fetch(
    network: tuple[Network, NetworkInfo], mini_world: Path, world_doc: dict[str, Any]
) -> None:
    net, info = network
    facilities = {f["code"]: f for f in world_doc["facilities"]}
    rids = regional_ids(net.data)
    for _, pid, codes in patients_with_data(mini_world, world_doc, 300):
        source = next(c for c in codes if facilities[c]["network_role"] == "disclosing")
        client = login(info, facilities[source], "physician")
        consent = client.get(f"/patients/{rids[pid]}/consents").json()["current"]
        entries = client.get(f"/patients/{rids[pid]}/timeline").json()["entries"]
        if consent and consent["active_today"] and entries:
            break
        client.close()
    else:
        pytest.fail("no sharing patient in the mini world")
    rid, entry = rids[pid], entries[0]
    url = f"/patients/{rid}/entries/{entry['source']}/{entry['id']}"
    assert client.get(url).status_code == 200
    withdrawal = {
        "form_id": f"W-{rid}",
        "base_form_id": consent["form_id"],
        "withdrawn_on": dt.date.today().isoformat(),
    }
    assert client.post(f"/patients/{rid}/consents/withdrawals", json=withdrawal).status_code == 201
    denied = client.get(url)
    assert denied.status_code == 403
    assert denied.json()["detail"]["reason"] == "withdrawn"
    assert client.get(f"/patients/{rid}/timeline").json()["entries"] == []
    with httpx.Client(base_url=info.base_url, headers={"Authorization": f"Bearer {info.admin_token}"}) as op:
        rows = op.get(f"/patients/{rid}/access-report").json()["rows"]
    fetches = [(r["action"], r["outcome"], r["reason"]) for r in rows if r["action"] == "fetch"]
    assert fetches[-2:] == [("fetch", "success", "care"), ("fetch", "failure", "withdrawn")]
    client.close()


def test_gateway_down_gives_a_labelled_partial_result(
    network: tuple[Network, NetworkInfo], mini_world: Path, world_doc: dict[str, Any]
) -> None:
    net, info = network
    facilities = {f["code"]: f for f in world_doc["facilities"]}
    rids = regional_ids(net.data)
    disclosing = {c for c, f in facilities.items() if f["network_role"] == "disclosing"}
    pid, codes = next(
        (p, c) for _, p, c in patients_with_data(mini_world, world_doc, 300) if len(disclosing & set(c)) >= 2
    )
    sources = sorted(disclosing & set(codes))
    victim = sources[0]
    with login(info, facilities[sources[1]], "physician") as client:
        before = client.get(f"/patients/{rids[pid]}/timeline").json()
        statuses = {s["facility"]: s["status"] for s in before["sources"]}
        assert statuses[victim] == "ok", before["sources"]
        run = [
            sys.executable,
            "-m",
            "harness.cli",
            "fault",
            "--network",
            str(net.network_file),
            "gateway",
            victim,
        ]
        for mode, expected in ((["down"], "error"), (["error"], "error"), (["slow", "3000"], "timeout")):
            subprocess.run([*run, *mode], check=True, cwd=REPO, capture_output=True, timeout=30)
            reply = client.get(f"/patients/{rids[pid]}/timeline", params={"timeout_ms": 1000})
            assert reply.status_code == 200
            body = reply.json()
            got = {s["facility"]: s for s in body["sources"]}
            assert got[victim]["status"] == expected, (mode, got[victim])
            assert got[sources[1]]["status"] == "ok"
            assert all(e["source"] != victim for e in body["entries"])
            assert any(e["source"] == sources[1] for e in body["entries"])
            subprocess.run([*run, "up"], check=True, cwd=REPO, capture_output=True, timeout=30)
        after = client.get(f"/patients/{rids[pid]}/timeline").json()
    assert after["entries"] == before["entries"]


def test_bootstrap_twice_adds_nothing(network: tuple[Network, NetworkInfo], mini_world: Path) -> None:
    net, info = network
    with httpx.Client(base_url=info.base_url, headers={"Authorization": f"Bearer {info.admin_token}"}) as op:
        before = len(op.get("/audit", params={"limit": 100000}).json()["records"])
        stats = bootstrap(mini_world, info, net.data)
        after = len(op.get("/audit", params={"limit": 100000}).json()["records"])
    assert stats.skipped
    assert after == before


def test_rhin_up_stops_every_process_it_started(mini_world: Path, tmp_path: Path) -> None:
    proc = rhin_up(mini_world, tmp_path, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready:"), line
        doc = json.loads((tmp_path / "network.json").read_text(encoding="utf-8"))
        children = [doc["hub"]["pid"], *(s["pid"] for s in doc["shards"])]
        assert all(_alive(p) for p in children)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in children if _alive(p)]


def test_a_crashed_child_stops_the_network(mini_world: Path, tmp_path: Path) -> None:
    proc = rhin_up(mini_world, tmp_path, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ready:")
        doc = json.loads((tmp_path / "network.json").read_text(encoding="utf-8"))
        os.kill(doc["shards"][0]["pid"], signal.SIGKILL)
        assert proc.wait(30) != 0
        assert proc.stderr is not None
        assert "gateways-0 exited" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.5)
    assert not _alive(doc["hub"]["pid"])


def rhin_up(world: Path, tmp_path: Path, *, stderr: int) -> subprocess.Popen[str]:
    """`rhin up` as a user runs it (links off, cheap hashing), its data and network file under tmp_path."""
    args = ["up", "--world", str(world), "--no-links", "--scrypt-cost", "4", "--data", str(tmp_path / "hub")]
    args += ["--network-file", str(tmp_path / "network.json")]
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): check its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_signal_during_the_bootstrap_stops_everything(mini_world: Path, tmp_path: Path) -> None:
    proc = rhin_up(mini_world, tmp_path, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while "network up" not in proc.stderr.readline():
            assert time.monotonic() < deadline, "rhin up never reported the network up"
        doc = json.loads((tmp_path / "network.json").read_text(encoding="utf-8"))
        children = [doc["hub"]["pid"], *(s["pid"] for s in doc["shards"])]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 130
        assert proc.stdout is not None
        assert "ready:" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not [p for p in children if _alive(p)]
