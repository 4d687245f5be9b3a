"""What a live network is made of, whichever backend starts it (processes: :mod:`simulator.network`;
containers: :mod:`simulator.containers`): the world's disclosing facilities, the external gateways that
replace some of them (the override file), the shards the rest are balanced into, the hub's section of the
network file, the atomic write of that file and the health check every part must pass before ``ready``.

One plan, two launchers: the container backend starts exactly the shards the process backend would.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from simulator.gateway.shard import partition
from synthetic.errors import ProfileError
from synthetic.yamlio import parse_yaml

__all__ = [
    "NetworkError",
    "NetworkPlan",
    "check_health",
    "hub_section",
    "load_overrides",
    "plan_network",
    "write_network_file",
]


class NetworkError(Exception):
    """The network could not start (or a part of it died): the message says which part and why."""


@dataclass(frozen=True)
class NetworkPlan:
    """The world document, its disclosing facilities, the external gateways and the synthetic shards."""

    world: dict[str, Any]
    disclosing: list[str]
    overrides: dict[str, dict[str, str]]
    groups: list[list[str]]


def plan_network(world_dir: Path, shards: int, overrides_path: Path | None) -> NetworkPlan:
    """Read ``world_dir/world.json`` and balance its served facilities into ``shards`` groups by beds
    (:func:`simulator.gateway.partition`); overridden facilities are not served."""
    try:
        world = json.loads((world_dir / "world.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise NetworkError(f"{world_dir} is not a world directory: {exc}") from exc
    disclosing = [str(f["code"]) for f in world["facilities"] if f.get("network_role") == "disclosing"]
    overrides = load_overrides(overrides_path, set(disclosing)) if overrides_path else {}
    served = {**world, "facilities": [f for f in world["facilities"] if str(f["code"]) not in overrides]}
    groups = partition(served, shards) if len(disclosing) > len(overrides) else []
    return NetworkPlan(world, disclosing, overrides, groups)


def load_overrides(path: Path, disclosing: set[str]) -> dict[str, dict[str, str]]:
    """``gateways: {code: {url, secret?}}`` from YAML or JSON; errors name the file and the key."""
    try:
        doc = parse_yaml(path.read_text(encoding="utf-8"), str(path))[1] or {}
    except OSError as exc:
        raise NetworkError(f"{path}: cannot read the override file: {exc}") from exc
    except ProfileError as exc:  # syntax, or a document beyond parse_yaml's bounds
        raise NetworkError(f"cannot read the override file: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) - {"gateways"}:
        raise NetworkError(
            f"{path}: expected one key, gateways (got {sorted(doc) if isinstance(doc, dict) else doc!r})"
        )
    out: dict[str, dict[str, str]] = {}
    for code, entry in (doc.get("gateways") or {}).items():
        key = f"{path}: gateways.{code}"
        if str(code) not in disclosing:
            raise NetworkError(f"{key}: not a disclosing facility of this world")
        if not isinstance(entry, dict) or "url" not in entry or set(entry) - {"url", "secret"}:
            raise NetworkError(f"{key}: expected {{url, secret?}}")
        url = str(entry["url"])
        if not url.startswith(("http://", "https://")):
            raise NetworkError(f"{key}.url: {url!r} is not an http(s) URL")
        out[str(code)] = {
            "url": url.rstrip("/"),
            **({"secret": str(entry["secret"])} if "secret" in entry else {}),
        }
    return out


def hub_section(
    ready: Mapping[str, Any],
    data: Path,
    *,
    mllp: Sequence[Any],
    http: Sequence[Any],
    soap: Sequence[Any] | None,
    pid: int | None,
) -> dict[str, Any]:
    """The network file's ``hub``: its ``ready`` document with the (host, port) addresses clients use (the
    bound ones for processes, the published ones for containers)."""
    tls = ready.get("mllp_tls")
    section: dict[str, Any] = {
        "pid": pid,
        "mllp": {"host": mllp[0], "port": int(mllp[1]), "tls": tls},
        "http": {"base_url": f"http://{http[0]}:{http[1]}"},
        "admin_token_file": ready["admin_token_file"],
        "data": str(data),  # its stores, audit key and checkpoints (offline verification)
    }
    if soap is not None:  # PIXv3/PDQv3 (simulator.hub.v3): HTTPS with the MLLP certificates unless plain
        section["soap"] = {"base_url": f"{'https' if tls else 'http'}://{soap[0]}:{soap[1]}"}
    return section


def write_network_file(path: Path, document: Mapping[str, Any]) -> None:
    """Write atomically (a reader never sees half a file), mode 0600: it holds admin tokens."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(document, out, ensure_ascii=False, indent=2)
    tmp.replace(path)


def check_health(document: Mapping[str, Any], timeout: float) -> None:
    """Wait until the hub's and every synthetic gateway's ``/health`` answers 200 (within ``timeout``)."""
    urls = [document["hub"]["http"]["base_url"] + "/health"]
    urls += [g["url"] + "/health" for g in document["gateways"].values() if not g.get("external")]
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        for url in urls:
            while True:
                try:
                    if client.get(url).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise NetworkError(f"{url} is not healthy")
                time.sleep(0.05)
