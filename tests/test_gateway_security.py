"""Crafted IDs and paths over raw HTTP, and symlinks planted in a facility's roots: never a file outside.

The world here is a copy of one mini facility with hostile additions: a sentinel file beside the roots,
symlinks (to the sentinel, to folders outside, to another patient's file) under valid SS-MIX2, CDA and
DICOM names, a root that is itself a symlink (allowed), and a file large enough to be streamed in chunks.
Requests go over a plain socket so no client normalises ``..`` or percent-escapes on the way.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.gateway.app import CHUNK_BYTES
from simulator.gateway.entries import document_ref, hl7_ref, image_ref
from tests.test_gateway import (
    RunningShard,
    disk_entries,
    patient_folder,
    patients,
    richest_patient,
    running_shard,
    studies_on_disk,
)

SENTINEL = b"SENTINEL-outside-the-facility-roots"


class Hostile:
    def __init__(self, world: Path, code: str, base: Path) -> None:
        self.world, self.code, self.base = world, code, base
        self.planted: dict[str, str] = {}  # label -> entry ID that must not be listed or served


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def hostile(mini_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    base = tmp_path_factory.mktemp("hostile")
    world = base / "world"
    data = json.loads((mini_world / "world.json").read_text(encoding="utf-8"))
    code = next(
        f["code"]
        for f in data["facilities"]
        if f["network_role"] == "disclosing"
        and "images" in f["disclosure"]
        and studies_on_disk(mini_world, f["code"])
    )
    (world / "storage").mkdir(parents=True)
    (world / "extended").mkdir()
    (world / "images").mkdir()
    (world / "world.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    shutil.copytree(mini_world / "storage" / code, world / "storage" / code)
    shutil.copytree(mini_world / "extended" / code, base / "volume2" / "extended")
    os.symlink(base / "volume2" / "extended", world / "extended" / code)  # a symlinked root is fine
    shutil.copytree(mini_world / "images" / code, world / "images" / code)
    (world / "secret.txt").write_bytes(SENTINEL)
    (base / "secret.txt").write_bytes(SENTINEL)
    h = Hostile(world, code, base)

    pids = patients(world, code)
    victim, other = pids[0], pids[1]
    storage = world / "storage" / code
    # 1. A valid SS-MIX2 name that is a symlink to a file outside the roots.
    name = f"{victim}_-_ADT-00_999999999999998_20990101000000000_-_1"
    os.symlink(world / "secret.txt", patient_folder(storage, victim) / "-" / "ADT-00" / name)
    h.planted["file symlink out"] = hl7_ref(name).entry_id
    # 2. A symlinked care-date folder leading outside, holding a validly named file.
    outside = base / "outside" / "OMP-01"
    outside.mkdir(parents=True)
    name = f"{victim}_20991231_OMP-01_000000000000001_20991231000000000_01_1"
    (outside / name).write_bytes(SENTINEL)
    os.symlink(base / "outside", patient_folder(storage, victim) / "20991231")
    h.planted["folder symlink out"] = hl7_ref(name).entry_id
    # 3. A symlink inside the root to another patient's file (would leak it under the victim's ID).
    theirs = next(p for p in sorted(patient_folder(storage, other).rglob("*_ADT-00_*")) if p.is_file())
    name = f"{victim}_-_ADT-00_999999999999997_20990101000000000_-_1"
    os.symlink(theirs, patient_folder(storage, victim) / "-" / "ADT-00" / name)
    h.planted["symlink to another patient"] = hl7_ref(name).entry_id
    # 4. A document content folder that is a symlink to a folder outside.
    extended = world / "extended" / code
    doc = next(extended.rglob("main_document.xml"))
    rel = doc.relative_to(extended)
    fields = rel.parts[5].split("_")
    fields[3] = "999999999999999"
    fake_content = "_".join(fields)
    (base / "outside-doc").mkdir()
    (base / "outside-doc" / "main_document.xml").write_bytes(SENTINEL)
    os.symlink(base / "outside-doc", doc.parent.parent / fake_content)
    h.planted["document folder symlink"] = document_ref(
        "/".join((*rel.parts[:5], fake_content, "main_document.xml"))
    ).entry_id
    # 5. A DICOM instance symlink out, inside a real study, and a symlinked study folder.
    uid, (patient, modality, _date) = next(iter(studies_on_disk(world, code).items()))
    images = world / "images" / code
    os.symlink(world / "secret.txt", images / uid / "999-0001.dcm")
    h.planted["instance symlink out"] = image_ref(patient, modality, uid, "999-0001.dcm").entry_id
    shutil.copytree(images / uid, base / "outside-study")
    fake_uid = "2.25.999999"
    os.symlink(base / "outside-study", images / fake_uid)
    first = min(p.name for p in (images / uid).iterdir() if not p.is_symlink())
    h.planted["study folder symlink"] = image_ref(patient, modality, fake_uid, first).entry_id
    # 6. A large (streamed) file of a disclosed category.
    name = f"{victim}_-_ADT-00_999999999999996_20990101000000000_-_1"
    big = patient_folder(storage, victim) / "-" / "ADT-00" / name
    big.write_bytes(os.urandom(CHUNK_BYTES * 4 + 123))
    h.planted["big"] = hl7_ref(name).entry_id
    return h


@pytest.fixture(scope="module")
def shard(hostile: Hostile) -> Iterator[RunningShard]:
    with running_shard(hostile.world, [hostile.code], links=False) as running:
        yield running


def raw_get(shard: RunningShard, code: str, target: str, *, auth: bool = True) -> tuple[int, bytes]:
    """One HTTP/1.1 GET with the request target exactly as given."""
    g = shard.info["gateways"][code]
    secret = shard.facility(code)["gateway_secret"]
    head = f"GET {target} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
    if auth:
        head += f"Authorization: Bearer {secret}\r\n"
    with socket.create_connection((g["host"], g["port"]), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest


CRAFTED = [
    "/entries/../../../world.json",
    "/entries/..%2F..%2F..%2Fworld.json",
    "/entries/%2e%2e/%2e%2e/%2e%2e/world.json",
    "/entries/%252e%252e%252f%252e%252e%252fworld.json",
    "/entries/..\\..\\..\\world.json",
    "/entries/hl7~..%2F..%2F..%2F..%2F..%2F..%2F..%2Fsecret.txt",
    "/entries/hl7~%2Fetc%2Fpasswd",
    "/entries//etc/passwd",
    "/entries/%2Fetc%2Fpasswd",
    "/entries/hl7~00000001_-_ADT-00_999999999999999_20990101000000000_-_1%00",
    "/entries/hl7%00~00000001_-_ADT-00_999999999999999_20990101000000000_-_1",
    "/entries/%C0%AE%C0%AE%2F%C0%AE%C0%AE%2Fsecret.txt",
    "/entries/" + "A" * 600,
    "/entries/hl7~" + "1" * 520,
    "/entries/cda~" + _b64("..") + "~" + _b64("..") + "~" + _b64("secret.txt"),
    "/entries/cda~" + _b64("../../../..") + "~" + _b64("x") + "~" + _b64("main_document.xml"),
    "/entries/cda~" + _b64("a/b") + "~" + _b64("c") + "~" + _b64("main_document.xml"),
    "/entries/cda~" + _b64("/etc") + "~" + _b64("passwd") + "~" + _b64("main_document.xml"),
    "/entries/dcm~00000001~CT~..~..~secret.txt",
    "/entries/dcm~00000001~CT~2.25.1~..%2F..%2F..%2Fsecret.txt",
    "/entries/dcm~00000001~CT~..%2F..%2F..~001-0001.dcm",
    "/patients/..%2F..%2F..%2Fsecret.txt/entries",
    "/patients/../../secret.txt/entries",
    "/studies/..%2F..%2F..%2Fsecret.txt/instances",
    "/studies/../../../secret.txt/instances",
    "/../../secret.txt",
    "/secret.txt",
    "/world.json",
]


@pytest.mark.parametrize("target", CRAFTED)
def test_crafted_targets_get_4xx_and_no_outside_bytes(
    shard: RunningShard, hostile: Hostile, target: str
) -> None:
    status, body = raw_get(shard, hostile.code, target)
    assert 400 <= status < 500, (target, status, body[:200])
    assert SENTINEL not in body
    assert b"gateway_secret" not in body


def test_planted_symlinks_are_neither_listed_nor_served(shard: RunningShard, hostile: Hostile) -> None:
    planted = {label: entry_id for label, entry_id in hostile.planted.items() if label != "big"}
    listed: set[str] = set()
    with shard.client(hostile.code) as client:
        for pid in patients(hostile.world, hostile.code):
            reply = client.get(f"/patients/{pid}/entries", params={"history": "true"})
            assert reply.status_code == 200
            listed |= {e["id"] for e in reply.json()["entries"]}
        for label, entry_id in planted.items():
            assert entry_id not in listed, label
            status, body = raw_get(shard, hostile.code, f"/entries/{entry_id}")
            assert status == 404, (label, status)
            assert SENTINEL not in body
        uid = image_ref("00000000", "CT", "2.25.999999", "001-0001.dcm").study_uid
        assert client.get(f"/studies/{uid}/instances").status_code == 404


def test_a_symlinked_root_serves_and_large_files_stream_intact(shard: RunningShard, hostile: Hostile) -> None:
    code = hostile.code
    pid = richest_patient(hostile.world, code, "document")
    documents = [e for e in disk_entries(hostile.world, code, pid) if e.kind == "document" and e.flag == "1"]
    assert documents
    with shard.client(code) as client:
        listed = {e["id"] for e in client.get(f"/patients/{pid}/entries").json()["entries"]}
        for doc in documents:
            if doc.category in shard.facility(code)["disclosure"]:
                assert doc.entry_id in listed
                assert client.get(f"/entries/{doc.entry_id}").content == doc.path.read_bytes()
        big = hostile.planted["big"]
        ref = hl7_ref(big.partition("~")[2])
        data = (hostile.world / "storage" / code / ref.path).read_bytes()
        assert len(data) > CHUNK_BYTES
        with client.stream("GET", f"/entries/{big}") as reply:
            assert reply.status_code == 200
            assert reply.headers["content-length"] == str(len(data))
            chunks = list(reply.iter_raw())
        assert b"".join(chunks) == data
        assert big in {e["id"] for e in client.get(f"/patients/{ref.patient}/entries").json()["entries"]}


def test_unauthenticated_crafted_requests_are_401_not_404(shard: RunningShard, hostile: Hostile) -> None:
    for target in ["/entries/..%2F..%2Fsecret.txt", "/entries/hl7~x", "/patients/12345678/entries"]:
        status, body = raw_get(shard, hostile.code, target, auth=False)
        assert status == 401, target
        assert SENTINEL not in body
