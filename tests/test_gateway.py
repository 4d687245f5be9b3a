"""Facility gateways over real sockets on the mini world: listing, filters, history, bytes, disclosure, auth.

Expectations come from walking the files on disk with this module's own small oracle (file-name regex,
its own category table, DICOM headers read with pydicom), not from the gateway's reader. The helpers
(:func:`running_shard`, the oracle) are shared with the other ``test_gateway_*`` modules.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from simulator.gateway import partition, serve_gateways
from simulator.gateway.entries import document_ref, hl7_ref, image_ref, parse_entry_id
from synthetic.model import ITEM_CATEGORIES

ADMIN_TOKEN = "test-admin-token"
WAIT = 30.0
HL7_NAME = re.compile(
    r"^([0-9A-Za-z]+)_(\d{8}|-)_(ADT-\d\d|PPR-01|OMD|OMP-\d\d|OML-\d\d|OMG-\d\d)_[0-9A-Za-z]+_(\d{17})_"
    r"([0-9A-Z]{2,3}|-)_([012])$"
)
# The oracle's own category table (README "Event kinds"; synthetic.care KIND_CATEGORY), written apart.
ORACLE_CATEGORY = {
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
}
ORACLE_DOCUMENTS = {
    "18842-5": "discharge_summaries",
    "57133-1": "referral_letters",
    "11506-3": "progress_notes",
    "34746-8": "nursing_notes",
}


def oracle_category(data_type: str) -> str:
    return "patient_basics" if data_type.startswith("ADT-") else ORACLE_CATEGORY[data_type]


# -- running a shard in-process -------------------------------------------------------------------------
@dataclass
class RunningShard:
    info: dict[str, Any]
    world: dict[str, Any]
    world_dir: Path

    def facility(self, code: str) -> dict[str, Any]:
        return next(f for f in self.world["facilities"] if f["code"] == code)

    def url(self, code: str) -> str:
        g = self.info["gateways"][code]
        return f"http://{g['host']}:{g['port']}"

    def client(self, code: str, secret: str | None = None) -> httpx.Client:
        token = self.facility(code)["gateway_secret"] if secret is None else secret
        return httpx.Client(
            base_url=self.url(code), headers={"Authorization": f"Bearer {token}"}, timeout=WAIT
        )

    def admin(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        a = self.info["admin"]
        return httpx.Client(
            base_url=f"http://{a['host']}:{a['port']}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=WAIT,
        )


@contextmanager
def running_shard(world_dir: Path, codes: list[str] | None = None, **options: Any) -> Iterator[RunningShard]:
    """serve_gateways in a thread with its own loop; stopped (and joined) on exit."""
    got: queue.Queue[object] = queue.Queue()
    control: dict[str, Any] = {}

    async def main() -> None:
        control["loop"], control["stop"] = asyncio.get_running_loop(), asyncio.Event()
        await serve_gateways(
            world_dir, codes, admin_token=ADMIN_TOKEN, ready=got.put, stop=control["stop"], **options
        )

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            got.put(exc)
        got.put("stopped")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    first = got.get(timeout=WAIT)
    if isinstance(first, BaseException):
        raise first
    assert isinstance(first, dict)
    world = json.loads((world_dir / "world.json").read_text(encoding="utf-8"))
    try:
        yield RunningShard(first, world, world_dir)
    finally:
        control["loop"].call_soon_threadsafe(control["stop"].set)
        thread.join(WAIT)
        assert not thread.is_alive(), "the shard did not stop"
        assert got.get(timeout=1) == "stopped"


# -- the oracle -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiskEntry:
    kind: str
    patient: str
    path: Path
    entry_id: str
    category: str
    data_type: str
    flag: str
    care_date: str


def patient_folder(root: Path, pid: str) -> Path:
    return root / pid[0:3] / pid[3:6] / pid


def disk_entries(world_dir: Path, code: str, pid: str) -> list[DiskEntry]:
    """Every file of the patient at the facility, whatever its flag or category."""
    found = []
    storage = patient_folder(world_dir / "storage" / code, pid)
    for path in sorted(p for p in storage.rglob("*") if p.is_file()):
        m = HL7_NAME.match(path.name)
        assert m, path
        assert m[1] == pid
        found.append(DiskEntry("hl7", pid, path, f"hl7~{path.name}", oracle_category(m[3]), m[3], m[6], m[2]))
    extended = patient_folder(world_dir / "extended" / code, pid)
    for path in sorted(extended.rglob("main_document*")):
        type_folder, content = path.parts[-3], path.parts[-2]
        ref = document_ref(path.relative_to(world_dir / "extended" / code).as_posix())
        fields = content.split("_")
        if type_folder.startswith("MFER"):  # MFER waveforms: 生理検査 (issue 16)
            data_type, category = "MFER", "physiology_results"
        else:
            data_type = type_folder.split("^")[3]
            category = ORACLE_DOCUMENTS[data_type]
        found.append(
            DiskEntry("document", pid, path, ref.entry_id, category, data_type, fields[6], fields[1])
        )
    for study, (patient, modality, date) in studies_on_disk(world_dir, code).items():
        if patient != pid:
            continue
        for path in sorted((world_dir / "images" / code / study).iterdir()):
            entry_id = f"dcm~{pid}~{modality}~{study}~{path.name}"
            found.append(DiskEntry("image", pid, path, entry_id, "images", modality, "1", date))
    return found


_studies: dict[tuple[Path, str], dict[str, tuple[str, str, str]]] = {}


def studies_on_disk(world_dir: Path, code: str) -> dict[str, tuple[str, str, str]]:
    """Study UID → (DICOM PatientID, Modality, StudyDate) from each study's first instance."""
    key = (world_dir, code)
    if key not in _studies:
        out = {}
        root = world_dir / "images" / code
        for study in sorted(root.iterdir()) if root.is_dir() else []:
            ds = pydicom.dcmread(min(study.iterdir()), stop_before_pixels=True)
            assert ds.StudyInstanceUID == study.name
            out[study.name] = (str(ds.PatientID), str(ds.Modality), str(ds.StudyDate))
        _studies[key] = out
    return _studies[key]


def ipc_study_uids(world_dir: Path, code: str) -> dict[str, str]:
    """Study UID → local patient ID, from IPC-3 of every OMG-11/12 message in standardized storage."""
    out = {}
    for path in (world_dir / "storage" / code).rglob("*_OMG-1[12]_*"):
        text = path.read_bytes().decode("iso2022_jp")
        for segment in text.split("\r"):
            if segment.startswith("IPC|"):
                out[segment.split("|")[3]] = path.name.split("_")[0]
    return out


def patients(world_dir: Path, code: str) -> list[str]:
    root = world_dir / "storage" / code
    return sorted(p.name for p in root.glob("*/*/*") if p.is_dir())


def richest_patient(world_dir: Path, code: str, want: str) -> str:
    """The patient with the most files of one kind (``hl7``/``document``/``image``) or flag (``history``)."""

    def score(pid: str) -> int:
        entries = disk_entries(world_dir, code, pid)
        if want == "history":
            return sum(e.flag != "1" for e in entries)
        return sum(e.kind == want for e in entries)

    return max(patients(world_dir, code), key=lambda pid: (score(pid), pid))


def expected_ids(world_dir: Path, facility: dict[str, Any], pid: str, history: bool = False) -> list[str]:
    disclosed = set(facility["disclosure"])
    return sorted(
        e.entry_id
        for e in disk_entries(world_dir, facility["code"], pid)
        if e.category in disclosed and (history or e.flag == "1")
    )


# -- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def codes(shard: RunningShard) -> list[str]:
    return sorted(shard.info["gateways"])


def disclosing_facilities(world_dir: Path) -> list[dict[str, Any]]:
    world = json.loads((world_dir / "world.json").read_text(encoding="utf-8"))
    return sorted(
        (f for f in world["facilities"] if f["network_role"] == "disclosing"), key=lambda f: f["code"]
    )


def imaging_code(world_dir: Path) -> str:
    """A facility that discloses images and has studies on disk."""
    for f in disclosing_facilities(world_dir):
        if "images" in f["disclosure"] and studies_on_disk(world_dir, f["code"]):
            return str(f["code"])
    raise AssertionError("no facility of the mini world discloses images")


def undisclosed(shard: RunningShard) -> tuple[str, DiskEntry]:
    """A (facility, file on disk) whose category the facility does not disclose."""
    for code in sorted(shard.info["gateways"]):
        disclosed = set(shard.facility(code)["disclosure"])
        for pid in patients(shard.world_dir, code):
            for e in disk_entries(shard.world_dir, code, pid):
                if e.category not in disclosed:
                    return code, e
    raise AssertionError("every file of the mini world is disclosed: the test would prove nothing")


# -- tests ----------------------------------------------------------------------------------------------
def test_every_disclosing_facility_gets_a_gateway_with_health(shard: RunningShard, codes: list[str]) -> None:
    disclosing = [f["code"] for f in shard.world["facilities"] if f["network_role"] == "disclosing"]
    assert codes == sorted(disclosing)
    assert len({g["port"] for g in shard.info["gateways"].values()}) == len(codes)
    for code in codes:
        reply = httpx.get(f"{shard.url(code)}/health", timeout=WAIT)  # no credential needed
        assert reply.status_code == 200
        assert reply.json() == {"facility": code, "status": "ok"}


def test_credentials_are_required_and_checked(shard: RunningShard, codes: list[str]) -> None:
    code, other = codes[0], codes[1]
    pid = patients(shard.world_dir, code)[0]
    secret = shard.facility(code)["gateway_secret"]
    paths = [
        f"/patients/{pid}/entries",
        f"/entries/hl7~{pid}_-_ADT-00_1_20260101000000000_-_1",
        "/studies/1.2/instances",
    ]
    wrong = [
        {},
        {"Authorization": f"Bearer {secret}x"},
        {"Authorization": f"Bearer {shard.facility(other)['gateway_secret']}"},
        {"Authorization": f"Basic {secret}"},
        {"Authorization": secret},
        {"Authorization": "Bearer"},
    ]
    for path in paths:
        for headers in wrong:
            reply = httpx.get(shard.url(code) + path, headers=headers, timeout=WAIT)
            assert reply.status_code == 401, (path, headers)
            assert reply.headers["www-authenticate"].startswith("Bearer")
    with shard.client(code) as client:
        assert client.get(paths[0]).status_code == 200


def test_listing_is_current_disclosed_entries_sorted(shard: RunningShard, codes: list[str]) -> None:
    checked = 0
    for code in codes:
        facility = shard.facility(code)
        with shard.client(code) as client:
            for pid in patients(shard.world_dir, code)[:12]:
                reply = client.get(f"/patients/{pid}/entries")
                assert reply.status_code == 200
                body = reply.json()
                assert body["facility"] == code
                assert body["patient"] == pid
                entries = body["entries"]
                assert sorted(e["id"] for e in entries) == expected_ids(shard.world_dir, facility, pid)
                assert [(e["time"], e["id"]) for e in entries] == sorted(
                    (e["time"], e["id"]) for e in entries
                )
                for e in entries:
                    check_entry_shape(e, facility)
                    assert e["flag"] == "1"
                    assert parse_entry_id(e["id"]).patient == pid
                checked += len(entries)
    assert checked > 500


def check_entry_shape(e: dict[str, Any], facility: dict[str, Any]) -> None:
    assert set(e) == {
        "id", "kind", "data_type", "category", "time", "care_date", "flag", "size", "content_type", "title"
    }  # fmt: skip
    assert re.fullmatch(r"[A-Za-z0-9._~-]{1,512}", e["id"])
    assert e["category"] in ITEM_CATEGORIES
    assert e["category"] in facility["disclosure"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", e["time"])
    assert re.fullmatch(r"\d{8}|-", e["care_date"])
    assert e["flag"] in ("0", "1", "2")
    assert e["title"]
    ref = parse_entry_id(e["id"])  # the ID alone says kind, category and data type
    assert (ref.kind, ref.category, ref.data_type) == (e["kind"], e["category"], e["data_type"])
    content_type = {
        "hl7": "application/hl7-v2; charset=ISO-2022-JP",
        "document": "application/xml",
        "image": "application/dicom",
    }
    if e["data_type"] == "MFER":  # an MFER waveform in extended storage (issue 16)
        assert e["content_type"] == "application/x-mfer"
    else:
        assert e["content_type"] == content_type[e["kind"]]


def test_history_adds_superseded_and_deleted_versions(shard: RunningShard, codes: list[str]) -> None:
    code = max(codes, key=lambda c: sum(e.flag != "1" for p in patients(shard.world_dir, c)[:40]
                                        for e in disk_entries(shard.world_dir, c, p)))  # fmt: skip
    pid = richest_patient(shard.world_dir, code, "history")
    facility = shard.facility(code)
    with shard.client(code) as client:
        current = client.get(f"/patients/{pid}/entries").json()["entries"]
        full = client.get(f"/patients/{pid}/entries", params={"history": "true"}).json()["entries"]
    assert sorted(e["id"] for e in full) == expected_ids(shard.world_dir, facility, pid, history=True)
    flags = {e["flag"] for e in full}
    assert "2" in flags or "0" in flags
    assert current == [e for e in full if e["flag"] == "1"]


def test_filters_by_type_category_and_date(shard: RunningShard) -> None:
    code = imaging_code(shard.world_dir)
    pid = richest_patient(shard.world_dir, code, "hl7")
    with shard.client(code) as client:
        every = client.get(f"/patients/{pid}/entries").json()["entries"]
        types = sorted({e["data_type"] for e in every})
        assert len(types) >= 3
        some = types[:2]
        got = client.get(f"/patients/{pid}/entries", params={"types": ",".join(some)}).json()["entries"]
        assert got == [e for e in every if e["data_type"] in some]
        category = every[-1]["category"]
        got = client.get(f"/patients/{pid}/entries", params={"categories": category}).json()["entries"]
        assert got == [e for e in every if e["category"] == category]
        dated = sorted({e["care_date"] for e in every if e["care_date"] != "-"})
        assert len(dated) >= 2
        since, until = dated[len(dated) // 2], dated[-1]
        got = client.get(f"/patients/{pid}/entries", params={"from": since, "to": until}).json()["entries"]
        assert got == [e for e in every if e["care_date"] == "-" or since <= e["care_date"] <= until]
        assert len(got) < len(every)
        got = client.get(f"/patients/{pid}/entries", params={"types": "NO-SUCH"}).json()["entries"]
        assert got == []


def test_documents_filter_by_loinc_and_images_by_modality(shard: RunningShard) -> None:
    code = imaging_code(shard.world_dir)
    pid = richest_patient(shard.world_dir, code, "image")
    with shard.client(code) as client:
        every = client.get(f"/patients/{pid}/entries").json()["entries"]
        images = [e for e in every if e["kind"] == "image"]
        assert images
        modality = images[0]["data_type"]
        got = client.get(f"/patients/{pid}/entries", params={"types": modality}).json()["entries"]
        assert got == [e for e in every if e["data_type"] == modality]
        docs_pid = richest_patient(shard.world_dir, code, "document")
        every = client.get(f"/patients/{docs_pid}/entries").json()["entries"]
        documents = [e for e in every if e["kind"] == "document" and e["data_type"] != "MFER"]
        assert documents
        loinc = documents[0]["data_type"]
        assert re.fullmatch(r"\d+-\d", loinc)
        got = client.get(f"/patients/{docs_pid}/entries", params={"types": loinc}).json()["entries"]
        assert got == [e for e in documents if e["data_type"] == loinc]


def test_bad_queries_are_refused_and_unknown_patients_are_empty(
    shard: RunningShard, codes: list[str]
) -> None:
    with shard.client(codes[0]) as client:
        reply = client.get("/patients/ZZ9999999/entries")
        assert reply.status_code == 200
        assert reply.json()["entries"] == []
        for bad in ["12345", "abc_defgh", "1234567890123456", "12345%2E67", "%2E%2E%2F%2E%2E"]:
            assert client.get(f"/patients/{bad}/entries").status_code in (400, 404, 422), bad
        pid = patients(shard.world_dir, codes[0])[0]
        for params in [
            {"from": "2026-01-01"},
            {"to": "2026"},
            {"history": "maybe"},
            {"categories": "secrets"},
        ]:
            assert client.get(f"/patients/{pid}/entries", params=params).status_code in (400, 422), params


def test_fetched_bytes_equal_the_files_for_hl7_cda_and_dicom(shard: RunningShard) -> None:
    code = imaging_code(shard.world_dir)
    seen: set[str] = set()
    with shard.client(code) as client:
        for want in ("hl7", "document", "image"):
            pid = richest_patient(shard.world_dir, code, want)
            listed = {e["id"]: e for e in client.get(f"/patients/{pid}/entries").json()["entries"]}
            for disk in disk_entries(shard.world_dir, code, pid):
                if disk.kind != want or disk.entry_id not in listed:
                    continue
                reply = client.get(f"/entries/{disk.entry_id}")
                assert reply.status_code == 200
                data = disk.path.read_bytes()
                assert reply.content == data
                assert reply.headers["content-length"] == str(len(data)) == str(listed[disk.entry_id]["size"])
                assert reply.headers["content-type"] == listed[disk.entry_id]["content_type"]
                seen.add(want)
                if want == "hl7" and b"\x1b$B" in data:
                    seen.add("iso-2022-jp")
                    data.decode("iso2022_jp")
                if want == "image":
                    assert reply.content[128:132] == b"DICM"
    assert seen == {"hl7", "document", "image", "iso-2022-jp"}


def test_mfer_waveforms_are_listed_as_physiology_and_served(shard: RunningShard) -> None:
    """Every MFER file of a facility is listed (MFER, physiology_results) and served byte for byte."""
    world_dir = shard.world_dir
    for facility in disclosing_facilities(world_dir):
        code = facility["code"]
        files = sorted((world_dir / "extended" / code).rglob("main_document.mwf"))
        if files and "physiology_results" in facility["disclosure"]:
            break
    else:
        pytest.fail("no disclosing facility with MFER files and physiology disclosed")
    pid = files[0].parts[-5]
    on_disk = {d.entry_id: d for d in disk_entries(world_dir, code, pid) if d.data_type == "MFER"}
    assert on_disk
    with shard.client(code) as client:
        listed = client.get(f"/patients/{pid}/entries", params={"categories": "physiology_results"}).json()
        waves = {e["id"]: e for e in listed["entries"] if e["data_type"] == "MFER"}
        assert set(waves) == set(on_disk)
        for entry_id, entry in waves.items():
            assert (entry["kind"], entry["category"]) == ("document", "physiology_results")
            assert entry["content_type"] == "application/x-mfer"
            assert entry["title"] == "標準12誘導心電図"
            reply = client.get(f"/entries/{entry_id}")
            assert reply.status_code == 200
            assert reply.headers["content-type"] == "application/x-mfer"
            assert reply.content == on_disk[entry_id].path.read_bytes()
            assert reply.content[:6] == b"\x40\x20MFR "
        by_type = client.get(f"/patients/{pid}/entries", params={"types": "MFER"}).json()["entries"]
        assert {e["id"] for e in by_type} == set(on_disk)
        others = client.get(f"/patients/{pid}/entries", params={"categories": "lab_results"}).json()
        assert not [e for e in others["entries"] if e["data_type"] == "MFER"]


def test_undisclosed_categories_are_never_listed_and_forbidden(shard: RunningShard) -> None:
    code, hidden = undisclosed(shard)
    facility = shard.facility(code)
    assert hidden.category not in facility["disclosure"]
    with shard.client(code) as client:
        for patient in patients(shard.world_dir, code):
            for history in ("false", "true"):
                entries = client.get(
                    f"/patients/{patient}/entries",
                    params={"history": history, "categories": ",".join(ITEM_CATEGORIES)},
                ).json()["entries"]
                assert all(e["category"] in facility["disclosure"] for e in entries)
        reply = client.get(f"/entries/{hidden.entry_id}")
        assert reply.status_code == 403
        assert hidden.path.read_bytes()[:20] not in reply.content
        asked = client.get(f"/patients/{hidden.patient}/entries", params={"categories": hidden.category})
        assert asked.status_code == 200
        assert asked.json()["entries"] == []


def test_study_instances_and_patients_match_the_storage(shard: RunningShard, codes: list[str]) -> None:
    code = imaging_code(shard.world_dir)
    studies = studies_on_disk(shard.world_dir, code)
    ipc = ipc_study_uids(shard.world_dir, code)
    assert ipc
    assert set(ipc) <= set(studies)
    for uid, pid in ipc.items():
        assert studies[uid][0] == pid  # DICOM PatientID = the patient whose OMG-11/12 names the study
    with shard.client(code) as client:
        for uid, (pid, modality, _date) in list(studies.items())[:20]:
            got = client.get(f"/studies/{uid}/instances")
            assert got.status_code == 200
            names = sorted(p.name for p in (shard.world_dir / "images" / code / uid).iterdir())
            assert [e["id"] for e in got.json()] == [f"dcm~{pid}~{modality}~{uid}~{n}" for n in names]
            listed = {e["id"] for e in client.get(f"/patients/{pid}/entries").json()["entries"]}
            assert {e["id"] for e in got.json()} <= listed
        assert client.get("/studies/2.25.1/instances").status_code == 404
        assert client.get("/studies/2.25.x/instances").status_code == 400
    blind = [c for c in codes if "images" not in shard.facility(c)["disclosure"]]
    if blind:
        with shard.client(blind[0]) as client:
            assert client.get(f"/studies/{next(iter(studies))}/instances").status_code == 403


def test_image_ids_need_the_right_patient_and_modality(shard: RunningShard) -> None:
    code = imaging_code(shard.world_dir)
    uid, (pid, modality, _date) = next(iter(studies_on_disk(shard.world_dir, code).items()))
    name = min(p.name for p in (shard.world_dir / "images" / code / uid).iterdir())
    other = next(p for p in patients(shard.world_dir, code) if p != pid)
    with shard.client(code) as client:
        assert client.get(f"/entries/{image_ref(pid, modality, uid, name).entry_id}").status_code == 200
        assert client.get(f"/entries/{image_ref(other, modality, uid, name).entry_id}").status_code == 404
        wrong_modality = "MR" if modality != "MR" else "CT"
        assert client.get(f"/entries/{image_ref(pid, wrong_modality, uid, name).entry_id}").status_code == 404
        assert (
            client.get(f"/entries/{image_ref(pid, modality, uid, '999-9999.dcm').entry_id}").status_code
            == 404
        )
        ghost = hl7_ref(f"{pid}_-_ADT-00_999999999999999_20990101000000000_-_1").entry_id
        assert client.get(f"/entries/{ghost}").status_code == 404


def test_partition_balances_and_covers_every_disclosing_facility(shard: RunningShard) -> None:
    disclosing = sorted(f["code"] for f in shard.world["facilities"] if f["network_role"] == "disclosing")
    for n in (1, 2, 3, 4, 9):
        groups = partition(shard.world, n)
        assert sorted(c for g in groups for c in g) == disclosing
        assert len(groups) == min(n, len(disclosing))
        assert all(groups)
    assert partition(shard.world_dir, 2) == partition(shard.world, 2)
    assert len(partition(shard.world)) == min(os.cpu_count() or 1, len(disclosing))


def test_listings_run_in_worker_threads_a_bounded_few_at_a_time(tmp_path: Path) -> None:
    """Listings overlap (so disk waits do) but no more than the limiter allows, and the event loop keeps
    answering meanwhile."""
    import anyio

    from simulator.gateway import FacilityConfig, FaultState, create_gateway_app
    from simulator.gateway.catalog import Catalog

    class SlowCatalog(Catalog):
        def __init__(self, config: FacilityConfig) -> None:
            super().__init__(config)
            self.lock = threading.Lock()
            self.running = self.most = 0
            self.threads: set[int] = set()

        def entries(self, patient: str, **_: Any) -> list[dict[str, Any]]:
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.threads.add(threading.get_ident())
            threading.Event().wait(0.1)
            with self.lock:
                self.running -= 1
            return []

    config = FacilityConfig(
        "1234567890", "t", "secret", frozenset({"patient_basics"}), "", *(tmp_path / n for n in "sei")
    )
    catalog = SlowCatalog(config)

    async def main() -> float:
        app = create_gateway_app(catalog, FaultState(), listings=anyio.CapacityLimiter(2))
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": "Bearer secret"}
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", headers=headers) as client:
            listings = [asyncio.create_task(client.get(f"/patients/12345{i}7/entries")) for i in range(6)]
            await asyncio.sleep(0.02)
            started = asyncio.get_running_loop().time()
            assert (await client.get("/health")).status_code == 200
            health = asyncio.get_running_loop().time() - started
            assert all(r.status_code == 200 for r in await asyncio.gather(*listings))
            return health

    health_seconds = asyncio.run(main())
    assert catalog.most == 2
    assert threading.get_ident() not in catalog.threads
    assert health_seconds < 0.09  # not behind a listing (each takes 0.1 s)
