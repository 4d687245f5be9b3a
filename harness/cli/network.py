"""The live network: ``rhin up`` (the hub and every gateway, bootstrapped), ``rhin fault`` (a gateway
down, slow or failing) and ``rhin down`` (what a container network left behind). ``up`` starts it with
:func:`harness.targets.live_reference` — the launcher the scenario runs use — as processes or, with
``--backend docker``, as containers (:mod:`simulator.containers`); ``fault`` sends
:func:`harness.hubclient.set_fault`, as a scenario's fault step."""

from __future__ import annotations

import signal as signals
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import TaskID

from .options import SCRYPT_COST, Backend, DockerHost, ScryptCost, WorldDir, console, fail, progress_bar

if TYPE_CHECKING:
    from collections.abc import Iterator

    from simulator.bootstrap import BootstrapStats
    from simulator.network import Network

__all__ = ["bootstrap_cmd", "compose", "down", "fault", "up"]

FAULT_MODES = ("down", "slow", "error", "up")


def up(
    world: WorldDir,
    links: Annotated[
        bool, typer.Option("--links/--no-links", help="Apply the link models (latency, bandwidth).")
    ] = True,
    shards: Annotated[int, typer.Option("--shards", min=0, help="Gateway processes (0: one per core).")] = 0,
    network_file: Annotated[
        Path | None,
        typer.Option("--network-file", help="Where to write the addresses (default WORLD/network.json)."),
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="The hub's stores (default WORLD/hub).")] = None,
    overrides: Annotated[
        Path | None,
        typer.Option("--overrides", help="YAML/JSON: gateways: {CODE: {url, secret?}} (external gateways)."),
    ] = None,
    scrypt_cost: ScryptCost = SCRYPT_COST,
    exit_when_ready: Annotated[
        bool,
        typer.Option("--exit-when-ready", help="Stop everything right after `ready:` (benchmarks, checks)."),
    ] = False,
    backend: Backend = "process",
    docker_host: DockerHost = None,
) -> None:
    """Start the live network — the hub and every disclosing facility's gateway — bootstrap the hub through
    its real interfaces (ITI-8 feeds, ID links, consent documents), print `ready: ...` and run until
    interrupted. Every process (or container, with --backend docker) it started is stopped on exit, also when
    one of them crashes."""
    from harness.scenarios.errors import TargetError
    from harness.targets import ReferenceOptions, bootstrap_reference, live_reference

    started = time.monotonic()
    options = ReferenceOptions(
        links=links,
        shards=shards or None,
        scrypt_cost=scrypt_cost,
        overrides=overrides,
        backend=backend,
        docker_host=docker_host,
    )
    state = {"serving": False, "stop": False}
    with _stop_on_signals(state):
        try:
            with live_reference(world, world, options, hub_data=data, network_file=network_file) as net:
                _network_up(net, time.monotonic() - started)
                with progress_bar() as bar:
                    tasks: dict[str, TaskID] = {}

                    def progress(phase: str, done: int, total: int) -> None:
                        if phase not in tasks:
                            tasks[phase] = bar.add_task(f"bootstrap: {phase}", total=total)
                        bar.update(tasks[phase], completed=done, total=total)

                    stats = bootstrap_reference(net, progress)
                state["serving"] = True  # before `ready:`: a SIGINT right after it must stop cleanly
                _print_ready(net, stats, time.monotonic() - started)
                while not state["stop"] and not exit_when_ready:
                    crashed = net.crashed()
                    if crashed is not None:
                        fail(f"{crashed}; stopping the network")
                    time.sleep(0.2)
        except TargetError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            console.print("interrupted: stopping the network")
            raise typer.Exit(130) from None


@contextmanager
def _stop_on_signals(state: dict[str, bool]) -> Iterator[None]:
    """SIGINT and SIGTERM: while serving, ask the loop to stop; while starting or bootstrapping, abandon it
    at once (a KeyboardInterrupt: the launcher stops every process on the way out). Restored after."""

    def request_stop(signum: int, _frame: object) -> None:
        state["stop"] = True
        if not state["serving"]:
            raise KeyboardInterrupt

    previous = {sig: signals.signal(sig, request_stop) for sig in (signals.SIGINT, signals.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signals.signal(sig, handler)


def _network_up(net: Network, seconds: float) -> None:
    assert net.info is not None
    info = net.info
    console.print(f"network up in {seconds:.1f} s: hub {info.base_url}, {len(info.gateways)} gateways")
    if info.mllp_tls is not None:
        console.print(
            f"MLLP over TLS: CA {info.mllp_tls.ca_file}, facility certificates {info.mllp_tls.certs}"
        )


def _print_ready(net: Network, stats: BootstrapStats, seconds: float) -> None:
    """The `ready:` line on stdout (what scripts wait for)."""
    assert net.info is not None
    print(
        f"ready: {len(net.info.gateways)} gateways, {stats.patients} patients, {stats.feeds} feeds,"
        f" {stats.links} links, {stats.consent_documents} consent documents"
        f"{' (already bootstrapped)' if stats.skipped else ''};"
        f" network {net.info.document.get('ready_seconds', 0):.1f} s, total {seconds:.1f} s;"
        f" network file {net.network_file}",
        flush=True,
    )


def fault(
    network: Annotated[Path, typer.Option("--network", help="The network file `rhin up` wrote.")],
    what: Annotated[str, typer.Argument(help="What to act on: `gateway`.")],
    code: Annotated[str, typer.Argument(help="The facility code of the gateway.")],
    mode: Annotated[str, typer.Argument(help="down | slow | error | up")],
    ms: Annotated[int | None, typer.Argument(help="Milliseconds, for `slow`.")] = None,
) -> None:
    """Take a gateway down, slow it by MS milliseconds, make it fail (503), or restore it (`up`)."""
    from harness.hubclient import HubClientError, set_fault
    from simulator.network import NetworkError, load_network_file

    if what != "gateway":
        fail(f"unknown target {what!r}: only `gateway` can be faulted")
    if mode not in FAULT_MODES:
        fail(f"unknown mode {mode!r}: down, slow MS, error or up")
    if mode == "slow" and (ms is None or ms < 0):
        fail("slow needs a delay in milliseconds, e.g. `slow 2000`")
    try:
        shard = load_network_file(network).shard_of(code)
    except NetworkError as exc:
        fail(str(exc))
    try:
        reply = set_fault(
            shard["admin_url"], shard["admin_token"], code, mode, ms if mode == "slow" else None
        )
    except HubClientError as exc:
        fail(f"the gateway shard of {code} does not answer: {exc}")
    if reply.status >= 300:
        fail(f"the shard refused: {reply.status} {reply.body.decode('utf-8', 'replace')}")
    print(f"{code}: {mode}{f' {ms} ms' if mode == 'slow' else ''}")


def down(
    network: Annotated[Path, typer.Option("--network", help="The network file `rhin up` wrote.")],
    docker_host: DockerHost = None,
) -> None:
    """Remove every container and network a `--backend docker` network left (found by its label, so also
    after a crash of `rhin up`); a process network needs nothing: its processes die with their launcher."""
    from simulator.network import NetworkError, load_network_file

    try:
        document = load_network_file(network).document
    except NetworkError as exc:
        fail(str(exc))
    if document.get("backend") != "docker":
        console.print(f"{network}: a process network; its processes end with their launcher: nothing to do")
        return
    from simulator.containers.engine import connect, teardown

    try:
        client = connect(docker_host or document["docker"].get("host"))
    except NetworkError as exc:
        fail(str(exc))
    removed = teardown(client, str(document["docker"]["network"]))
    for what in removed:
        print(f"removed {what}")
    console.print(f"{document['docker']['network']}: {len(removed)} removed")


def bootstrap_cmd(
    world: WorldDir,
    network: Annotated[Path, typer.Option("--network", help="The network file naming the hub.")],
    data: Annotated[Path, typer.Option("--data", help="The hub's data folder (bootstrap.json goes there).")],
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to wait for the hub and gateways to be healthy.")
    ] = 120.0,
) -> None:
    """Bootstrap a running hub through its interfaces (ITI-8 feeds, ID links, consent documents), as `rhin
    up` does after starting it: the compose file's one-shot `bootstrap` service. Skipped when already done.
    It waits for every part's /health first: not every compose tool honours `service_healthy`."""
    from simulator.bootstrap import BootstrapError, bootstrap
    from simulator.netplan import check_health
    from simulator.network import NetworkError, load_network_file

    try:
        info = load_network_file(network)
        check_health(info.document, wait)
        stats = bootstrap(world, info, data)
    except (BootstrapError, NetworkError, OSError, ValueError) as exc:
        fail(f"bootstrapping the hub failed: {exc}")
    print(
        f"bootstrapped: {stats.patients} patients, {stats.feeds} feeds, {stats.links} links,"
        f" {stats.consent_documents} consent documents{' (already done)' if stats.skipped else ''}"
    )


def compose(
    world: WorldDir,
    out: Annotated[Path, typer.Option("--out", help="Folder for compose.yaml and rhin-compose/.")] = Path(
        "."
    ),
    shards: Annotated[int, typer.Option("--shards", min=0, help="Gateway shards (0: one per core).")] = 0,
    links: Annotated[bool, typer.Option("--links/--no-links", help="Apply the link models.")] = True,
    world_path: Annotated[
        str | None,
        typer.Option("--world-path", help="What the world volume binds (default: WORLD's absolute path)."),
    ] = None,
) -> None:
    """Write a compose file for WORLD (hub, one service per gateway shard, one-shot bootstrap; `rhin run` and
    Locust master/workers as the profiles `run` and `load`) and the network and target files it mounts."""
    import os

    from simulator.containers.compose import write_compose
    from simulator.netplan import NetworkError

    try:
        paths = write_compose(world, out, shards or os.cpu_count() or 1, links=links, world_path=world_path)
    except NetworkError as exc:
        fail(str(exc))
    for path in paths:
        print(path)
