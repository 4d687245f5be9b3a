"""Targets: the hub under test, reached only over its real interfaces (MLLP, HTTP, the shards' fault API).

* **reference** (default): rhin's live network for a world — the hub and every disclosing facility's
  gateway (:class:`simulator.network.Network`), bootstrapped through the hub's own interfaces as facilities
  would (:func:`simulator.bootstrap.bootstrap`: every registration over ITI-8, every patient's IDs linked,
  every consent document registered) — started for the run and stopped after it. One function knows how:
  :func:`launch_reference`, giving :class:`Endpoints`. The world's patients come with the regional IDs the
  bootstrap got (``DATA/bootstrap.json``), so scenarios can use the world exactly as the hub holds it, and
  the gateways serve the world directory's files (``local_files``). Link models are off by default (runs
  stay quick and timings deterministic); ``links=True`` gives a network with them on (the latency suite's).
* **external**: a hub described in a YAML file (``--target target.yaml``, format :class:`TargetFile`): MLLP
  and HTTP addresses, credentials (the world's users by default, or listed), which step kinds it supports,
  whether it holds the world (``regional_ids``: its bootstrap's ``bootstrap.json``) and serves this
  machine's world files (``local_files``), parameter overrides, and an optional adapter module for
  vendor-specific operations. MLLP is over TLS with mutual authentication: ``mllp.tls`` names the CA that
  signed the hub's certificate and a folder of per-facility client certificates (``<code>.pem`` and
  ``<code>.key``; the CN of each must be the facility code — :mod:`simulator.pki`). A hub without TLS is
  tested with ``plain_mllp: true``, and every report says so (:meth:`Target.describe`). An adapter is a
  module with functions named after step kinds (``consent_register(client, request) -> HttpOutcome``); the
  engine calls such a function instead of the reference API call, with the
  :class:`harness.hubclient.AdapterRequest` it would have sent.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from simulator.hub.index import REGIONAL_NAMESPACE, REGIONAL_OID
from simulator.pki import ClientTls
from synthetic.errors import ProfileError
from synthetic.yamlio import load_yaml

from .hl7v3client import PATHS as V3_PATHS
from .scenarios.errors import FormatError, TargetError
from .scenarios.history import default_state_file
from .scenarios.loader import validate_model
from .scenarios.model import ACTION_MODELS, HTTP_KINDS, MLLP_KINDS, V3_KINDS
from .scenarios.world import WorldIndex, WorldUser

if TYPE_CHECKING:  # the live network and its bootstrap are imported only when a network starts
    from simulator.bootstrap import BootstrapStats
    from simulator.bootstrap import Progress as BootstrapProgress
    from simulator.network import Network as LiveNetwork

__all__ = [
    "ALL_KINDS",
    "Endpoints",
    "NetworkFile",
    "ReferenceOptions",
    "Target",
    "TargetFile",
    "bootstrap_reference",
    "endpoints_from_network",
    "ensure_world",
    "launch_reference",
    "live_reference",
    "load_target",
    "reference_target",
]

ALL_KINDS: Final = frozenset(ACTION_MODELS)
DEFAULT_SCRYPT_COST: Final = 14
"""log2 of scrypt's N for the reference hub's password hashes: the hub's own default (OWASP's minimum), so
login latency is what a deployment would see. Tests pass 4."""


# ------------------------------------------------------------------------------------------- network file


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Shard(_Loose):
    admin_url: str
    admin_token: str = ""
    pid: int | None = None
    facilities: list[str] = Field(default_factory=list)


class _Gateway(_Loose):
    url: str = ""
    shard: int | None = None


class NetworkFile(_Loose):
    """The live network's address file (``WORLD/network.json``), as far as faults and addresses need it."""

    hub: dict[str, Any] = Field(default_factory=dict)
    gateways: dict[str, _Gateway] = Field(default_factory=dict)
    shards: list[_Shard] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> NetworkFile:
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as exc:
            raise TargetError(f"cannot read the network file {path}: {exc}") from exc

    def hub_mllp(self) -> tuple[str, int] | None:
        m = self.hub.get("mllp") or {}
        return (str(m["host"]), int(m["port"])) if "host" in m and "port" in m else None

    def hub_http(self) -> str | None:
        url = (self.hub.get("http") or {}).get("base_url")
        return str(url) if url else None

    def hub_soap(self) -> str | None:
        url = (self.hub.get("soap") or {}).get("base_url")
        return str(url) if url else None

    def mllp_tls(self) -> ClientTls | None:
        """The hub's MLLP TLS material (``hub.mllp.tls: {ca, certs}``); None: it speaks plain MLLP."""
        tls = (self.hub.get("mllp") or {}).get("tls")
        return ClientTls(Path(tls["ca"]), Path(tls["certs"])) if tls else None

    def admin_token(self) -> str | None:
        path = self.hub.get("admin_token_file")
        return _read_token(Path(path)) if path else None

    def shard_for(self, facility: str) -> _Shard | None:
        gateway = self.gateways.get(facility)
        if gateway is not None and gateway.shard is not None and 0 <= gateway.shard < len(self.shards):
            return self.shards[gateway.shard]
        return next((s for s in self.shards if facility in s.facilities), None)


# ------------------------------------------------------------------------------------------- target


@dataclass(frozen=True)
class Target:
    """A hub under test: where it listens, who may log in, what it supports."""

    name: str
    kind: Literal["reference", "external"]
    mllp: tuple[str, int] | None
    http: str | None
    users: Mapping[str, tuple[WorldUser, ...]]
    admin_token: str | None = None
    network: NetworkFile | None = None
    supports: frozenset[str] = ALL_KINDS
    adapter: ModuleType | None = None
    regional_namespace: str = REGIONAL_NAMESPACE
    regional_oid: str = REGIONAL_OID
    strict_erl: bool = True
    receiving_application: str = "RHIN_HUB"
    receiving_facility: str = "RHIN"
    mllp_timeout: float = 10.0
    http_timeout: float = 10.0
    salt: str = ""
    allocation_salt: str | None = None  # choosing world patients (None: ``salt``); fresh IDs always use salt
    salt_fixed: bool = False  # the target file fixes the salt (else a new one each run)
    regional_ids: Mapping[str, str] | None = None  # world patient ID → regional ID (None: not bootstrapped)
    local_files: bool = False  # its gateways serve the world directory's files on this machine
    params: Mapping[str, str] = field(default_factory=dict)
    links: bool = False  # the reference network's link models are on
    state_file: Path | None = None  # what earlier runs changed (harness.scenarios.history); external only
    mllp_tls: ClientTls | None = None  # None: plain MLLP (a hub under test without TLS; reports say so)
    soap: str | None = None  # the PIXv3/PDQv3 base URL (harness.scenarios.steps_v3)
    soap_tls: ClientTls | None = None  # its client certificates (https); None: plain HTTP
    soap_paths: Mapping[str, str] = field(default_factory=lambda: dict(V3_PATHS))

    @property
    def plain_mllp(self) -> bool:
        return self.mllp is not None and self.mllp_tls is None

    def describe(self) -> dict[str, Any]:
        """For reports (no passwords, no tokens)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "mllp": f"{self.mllp[0]}:{self.mllp[1]}" if self.mllp else None,
            "mllp_transport": "plain MLLP (no TLS)"
            if self.plain_mllp
            else "TLS, mutual"
            if self.mllp
            else None,
            "http": self.http,
            "soap": self.soap,
            "supports": sorted(self.supports),
            "adapter": self.adapter.__name__ if self.adapter else None,
            "error_location": "strict" if self.strict_erl else "lenient",
            "network": self.network is not None,
            "gateways": len(self.network.gateways) if self.network is not None else 0,
            "bootstrapped": self.regional_ids is not None,
            "local_files": self.local_files,
            "links": self.links,
        }

    def adapter_for(self, kind: str) -> Any:
        """The adapter's function for ``kind``, if the adapter has one."""
        return getattr(self.adapter, kind, None) if self.adapter is not None else None


# ------------------------------------------------------------------------------------------- external YAML


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _MllpAddress(_Strict):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    receiving_application: str = "RHIN_HUB"
    receiving_facility: str = "RHIN"
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    tls: _Tls | None = Field(None, description="MLLP over TLS: the CA and the facilities' certificates")


class _Tls(_Strict):
    ca: str = Field(description="PEM file of the CA that signed the hub's certificate")
    certs: str = Field(description="folder of client certificates: <facility code>.pem and .key")


class _HttpAddress(_Strict):
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0


class _SoapAddress(_Strict):
    """The hub's PIXv3/PDQv3 endpoints: a base URL, the TLS material (default: mllp.tls) and the paths."""

    base_url: Annotated[str, Field(pattern=r"^https?://")]
    tls: _Tls | None = None
    feed_path: str = V3_PATHS["feed"]
    pix_path: str = V3_PATHS["pix"]
    pdq_path: str = V3_PATHS["pdq"]


class _User(_Strict):
    facility: str
    user_id: str
    password: str
    viewer_kind: str = "physician"


class _Domain(_Strict):
    namespace: str
    oid: str


def _known_kind(kind: str) -> str:
    if kind not in ACTION_MODELS:
        raise ValueError(f"unknown step kind {kind!r}; one of: {', '.join(ACTION_MODELS)}")
    return kind


StepKind = Annotated[str, AfterValidator(_known_kind)]
"""A declared step kind (:mod:`harness.scenarios.kinds`; the list is not repeated here)."""
ParamValue = Annotated[str | int | float, Field(union_mode="left_to_right")]


class TargetFile(_Strict):
    """``--target`` YAML. Paths are relative to the file. ``supports`` defaults to what the addresses allow:
    the MLLP kinds with ``mllp``, the HTTP kinds with ``http``, ``fault`` with a ``network`` file."""

    schema_version: Literal[1]
    name: str
    mllp: _MllpAddress | None = None
    http: _HttpAddress | None = None
    soap: _SoapAddress | None = Field(None, description="PIXv3/PDQv3 (SOAP 1.2) endpoints")
    regional_domain: _Domain = _Domain(namespace=REGIONAL_NAMESPACE, oid=REGIONAL_OID)
    credentials: Literal["world", "listed"] = Field(
        "world", description="world: the world's users (plus `users`); listed: only `users`"
    )
    users: list[_User] = Field(default_factory=list)
    admin_token: str | None = None
    admin_token_file: str | None = None
    network: str | None = Field(
        None, description="a network.json (`rhin up`): gateway shards for faults; hub addresses if not given"
    )
    plain_mllp: bool = Field(
        False, description="the hub speaks plain MLLP without TLS (reports say so); else give mllp.tls"
    )
    supports: list[StepKind] | None = None
    adapter: str | None = Field(None, description="importable module with vendor operations")
    adapter_path: str | None = Field(None, description="folder added to sys.path before importing it")
    error_location: Literal["strict", "lenient"] = "strict"
    salt: str | None = Field(None, description="fresh-identity salt (default: a new one per run)")
    regional_ids: str | None = Field(
        None,
        description="the hub holds the world: a bootstrap.json (rhin up's DATA/bootstrap.json) mapping world "
        "patients to their regional IDs; world.bootstrapped scenarios are skipped without it",
    )
    local_files: bool = Field(
        False,
        description="its gateways serve this machine's world directory (world_file steps, byte comparisons)",
    )
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="scenario parameters for this target (e.g. latency budgets)"
    )
    state_file: str | None = Field(
        None,
        description="where rhin records what its runs changed on this hub (default: <this file's stem>"
        ".rhin-state.json beside it)",
    )


def load_target(path: Path, world: WorldIndex) -> Target:
    """An external target from YAML (errors name file, line and key), its adapter imported."""
    try:
        text = path.read_text(encoding="utf-8")
        data, lines = load_yaml(text, str(path))
    except OSError as exc:
        raise TargetError(f"cannot read target file {path}: {exc}") from exc
    except ProfileError as exc:
        raise FormatError(str(path), exc.problems) from None
    spec = validate_model(TargetFile, data, lines, str(path))
    base = path.parent
    users: dict[str, list[WorldUser]] = {}
    if spec.credentials == "world":
        users = {code: list(found) for code, found in world.users().items()}
    for u in spec.users:
        users.setdefault(u.facility, []).insert(
            0, WorldUser(u.facility, u.user_id, u.password, u.viewer_kind)
        )
    network = NetworkFile.load(base / spec.network) if spec.network else None
    token = spec.admin_token
    if spec.admin_token_file:
        token = _read_token(base / spec.admin_token_file)
    elif token is None and network is not None:
        token = network.admin_token()
    mllp = (spec.mllp.host, spec.mllp.port) if spec.mllp else network.hub_mllp() if network else None
    mllp_tls = _mllp_tls(spec, base, network, path) if mllp else None
    http = spec.http.base_url if spec.http else network.hub_http() if network else None
    soap = spec.soap.base_url if spec.soap else network.hub_soap() if network else None
    soap_tls = None
    if soap is not None and soap.startswith("https"):
        soap_tls = (
            ClientTls(base / spec.soap.tls.ca, base / spec.soap.tls.certs)
            if spec.soap and spec.soap.tls
            else mllp_tls
        )
        if soap_tls is None:
            raise TargetError(f"{path}: an https soap endpoint needs soap.tls (or mllp.tls)")
    if spec.supports is not None:
        supports: frozenset[str] = frozenset(spec.supports)
    else:
        supports = frozenset({"wait"})
        supports |= MLLP_KINDS if mllp else frozenset()
        supports |= (HTTP_KINDS - {"fault"}) if http else frozenset()
        supports |= {"fault"} if network and network.shards else frozenset()
        supports |= V3_KINDS if soap else frozenset()
    adapter = _import_adapter(spec.adapter, base / spec.adapter_path if spec.adapter_path else None)
    regional = _read_regional_ids(base / spec.regional_ids) if spec.regional_ids else None
    return Target(
        name=spec.name,
        kind="external",
        mllp=mllp,
        http=http,
        users={code: tuple(found) for code, found in users.items()},
        admin_token=token,
        network=network,
        supports=supports,
        adapter=adapter,
        regional_namespace=spec.regional_domain.namespace,
        regional_oid=spec.regional_domain.oid,
        strict_erl=spec.error_location == "strict",
        receiving_application=spec.mllp.receiving_application if spec.mllp else "RHIN_HUB",
        receiving_facility=spec.mllp.receiving_facility if spec.mllp else "RHIN",
        mllp_timeout=spec.mllp.timeout_s if spec.mllp else 10.0,
        http_timeout=spec.http.timeout_s if spec.http else 10.0,
        salt=spec.salt if spec.salt is not None else os.urandom(4).hex(),
        salt_fixed=spec.salt is not None,
        regional_ids=regional,
        local_files=spec.local_files,
        params={k: str(v) for k, v in spec.params.items()},
        mllp_tls=mllp_tls,
        soap=soap,
        soap_tls=soap_tls,
        soap_paths=(
            {"feed": spec.soap.feed_path, "pix": spec.soap.pix_path, "pdq": spec.soap.pdq_path}
            if spec.soap
            else dict(V3_PATHS)
        ),
        state_file=base / spec.state_file if spec.state_file else default_state_file(path),
    )


def _mllp_tls(spec: TargetFile, base: Path, network: NetworkFile | None, path: Path) -> ClientTls | None:
    """The target's MLLP TLS material: ``mllp.tls``, else the network file's; None only if ``plain_mllp``."""
    if spec.plain_mllp:
        if spec.mllp is not None and spec.mllp.tls is not None:
            raise TargetError(f"{path}: plain_mllp: true and mllp.tls contradict each other")
        return None
    if spec.mllp is not None and spec.mllp.tls is not None:
        tls = ClientTls(base / spec.mllp.tls.ca, base / spec.mllp.tls.certs)
    else:
        found = network.mllp_tls() if network is not None else None
        if found is None:
            raise TargetError(
                f"{path}: MLLP needs TLS material — mllp.tls: {{ca, certs}} — or, for a hub without TLS, "
                "plain_mllp: true"
            )
        tls = found
    if not tls.ca_file.is_file() or not tls.certs.is_dir():
        raise TargetError(f"{path}: mllp.tls: no CA file {tls.ca_file} or no certificate folder {tls.certs}")
    return tls


def _read_regional_ids(path: Path) -> dict[str, str]:
    """A bootstrap marker's ``regional_ids`` (or a plain ``{patient ID: regional ID}`` JSON object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot read the regional IDs {path}: {exc}") from exc
    found = data.get("regional_ids", data) if isinstance(data, dict) else None
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        raise TargetError(
            f"{path}: expected a bootstrap.json with `regional_ids` {{patient ID: regional ID}}"
        )
    return {str(k): v for k, v in found.items()}


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TargetError(f"cannot read the admin token {path}: {exc}") from exc


def _import_adapter(name: str | None, folder: Path | None) -> ModuleType | None:
    if name is None:
        return None
    if folder is not None and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    except Exception as exc:  # an adapter's own import error must name the adapter
        raise TargetError(f"cannot import the adapter module {name!r}: {type(exc).__name__}: {exc}") from exc


# ------------------------------------------------------------------------------------------- reference


@dataclass(frozen=True)
class Endpoints:
    """What a started reference network tells its clients."""

    mllp: tuple[str, int] | None
    http: str | None
    admin_token: str | None = None
    network: NetworkFile | None = None
    regional_ids: Mapping[str, str] | None = None
    links: bool = False
    mllp_tls: ClientTls | None = None
    soap: str | None = None


def endpoints_from_network(path: Path, regional_ids: Mapping[str, str] | None = None) -> Endpoints:
    """What a running live network (its ``network.json``) tells clients: the hub's addresses and operator
    token, the gateways and each shard's fault API."""
    network = NetworkFile.load(path)
    links = bool(json.loads(path.read_text(encoding="utf-8")).get("links", False))
    return Endpoints(
        network.hub_mllp(),
        network.hub_http(),
        network.admin_token(),
        network,
        regional_ids,
        links,
        network.mllp_tls(),
        network.hub_soap(),
    )


def ensure_world(world_dir: Path, profile: str = "mini", seed: int = 42) -> Path:
    """Generate ``world_dir`` (profile ``mini`` by default) unless it already holds a world."""
    if (world_dir / "world.json").is_file() and (world_dir / "world.sqlite").is_file():
        return world_dir
    from synthetic import load_profile, write_world  # only when a world must be made
    from synthetic.world import default_jobs

    world_dir.mkdir(parents=True, exist_ok=True)
    write_world(load_profile(profile), seed, world_dir, jobs=default_jobs())
    return world_dir


@dataclass(frozen=True)
class ReferenceOptions:
    """How the reference network starts: link models, gateway processes, the hub's password hashing, and
    external gateways standing in for some facilities' (``overrides``: ``rhin up --overrides``)."""

    links: bool = False
    shards: int | None = None  # None: one per core
    scrypt_cost: int = DEFAULT_SCRYPT_COST
    overrides: Path | None = None
    backend: str = "process"  # or "docker": each part in a container (simulator.containers)
    docker_host: str | None = None  # the Docker Engine API URL (default: the environment's)


@contextlib.contextmanager
def live_reference(
    world_dir: Path,
    data_dir: Path,
    options: ReferenceOptions = ReferenceOptions(),
    *,
    hub_data: Path | None = None,
    network_file: Path | None = None,
) -> Iterator[LiveNetwork]:
    """The one launcher of the live network for ``world_dir`` (``rhin up``, :func:`launch_reference`):
    started, not yet bootstrapped (:func:`bootstrap_reference`), its hub's stores in ``hub_data`` (default
    ``data_dir/hub``, with every process's log in ``logs/``) and its network file at ``network_file``
    (default ``data_dir/network.json``); every process stopped afterwards — also when starting fails or
    the caller is interrupted."""
    from simulator.network import Network as LiveNetwork
    from simulator.network import NetworkError

    data_dir.mkdir(parents=True, exist_ok=True)
    backend: Any = LiveNetwork
    if options.backend == "docker":
        backend = _docker_backend(options.docker_host)
    elif options.backend != "process":
        raise TargetError(f"unknown backend {options.backend!r}: process or docker")
    net: LiveNetwork = backend(
        world_dir,
        data=hub_data if hub_data is not None else data_dir / "hub",
        network_file=network_file if network_file is not None else data_dir / "network.json",
        links=options.links,
        shards=options.shards,
        overrides=options.overrides,
        scrypt_cost=options.scrypt_cost,
    )
    try:
        try:
            net.start()
        except NetworkError as exc:
            raise TargetError(f"the reference network did not start: {exc}") from exc
        yield net
    finally:
        net.stop()


def _docker_backend(docker_host: str | None) -> Any:
    """:class:`simulator.containers.network.DockerNetwork` bound to ``docker_host``; a clear error when the
    ``containers`` extra (the Docker SDK) is not installed."""
    import functools

    try:
        from simulator.containers.network import DockerNetwork
    except ImportError as exc:
        raise TargetError(
            f"--backend docker needs the Docker SDK: pip install 'rhin-testbed[containers]' ({exc})"
        ) from exc
    return functools.partial(DockerNetwork, docker_host=docker_host)


def bootstrap_reference(net: LiveNetwork, progress: BootstrapProgress | None = None) -> BootstrapStats:
    """Bootstrap a started network through the hub's own interfaces (skipped when its data says done)."""
    from simulator.bootstrap import BootstrapError, bootstrap

    assert net.info is not None, "bootstrap_reference needs a started network (live_reference)"
    try:
        return bootstrap(net.world, net.info, net.data, progress=progress)
    except (BootstrapError, OSError, ValueError) as exc:
        raise TargetError(f"bootstrapping the reference network failed: {exc}") from exc


@contextlib.contextmanager
def launch_reference(
    world_dir: Path, data_dir: Path, options: ReferenceOptions = ReferenceOptions()
) -> Iterator[Endpoints]:
    """Start the live network for ``world_dir`` with its state under ``data_dir`` (the hub's stores in
    ``hub/``, the network file, every process's log in ``hub/logs/``), bootstrap it, yield its endpoints;
    stop every process afterwards — also when starting or bootstrapping fails, or a process died."""
    from simulator.bootstrap import regional_ids

    try:
        with_storage = json.loads((world_dir / "world.json").read_text(encoding="utf-8")).get("storage", True)
    except (OSError, ValueError) as exc:
        raise TargetError(f"{world_dir} is not a world directory: {exc}") from exc
    if not with_storage:
        raise TargetError(
            f"{world_dir} was generated with --no-storage: the reference network's gateways would have "
            "nothing to serve (generate it with its storage)"
        )
    with live_reference(world_dir, data_dir, options) as net:
        bootstrap_reference(net)
        yield endpoints_from_network(net.network_file, regional_ids(net.data))
        crashed = net.crashed()
        if crashed is not None:
            raise TargetError(f"a process of the reference network died during the run: {crashed}")


@contextlib.contextmanager
def reference_target(
    world: WorldIndex,
    data_dir: Path,
    name: str = "reference",
    options: ReferenceOptions = ReferenceOptions(),
) -> Iterator[Target]:
    """The reference target for ``world``: launched, described with the world's users, stopped after."""
    with launch_reference(world.dir, data_dir, options) as endpoints:
        yield Target(
            name=name,
            kind="reference",
            mllp=endpoints.mllp,
            http=endpoints.http,
            users=world.users(),
            admin_token=endpoints.admin_token,
            network=endpoints.network,
            regional_ids=endpoints.regional_ids,
            local_files=True,
            links=endpoints.links,
            mllp_tls=endpoints.mllp_tls,
            soap=endpoints.soap,
            soap_tls=endpoints.mllp_tls if endpoints.soap and endpoints.soap.startswith("https") else None,
        )
