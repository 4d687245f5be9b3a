"""``python -m simulator.hub``: the reference hub as a process, for the live-network launcher.

The same :func:`~.server.run_hub` as ``rhin hub`` (which people use), without going through the harness's
CLI: the simulator never depends on the harness. Prints ``ready: {json}`` — ``{"pid", "mllp": [host, port],
"http": [host, port], "admin_token_file", "data", "mllp_tls"}`` (``mllp_tls``: ``{"ca", "certs"}``, the CA
file and the facilities' certificate folder, or null with ``--plain-mllp``) — on stdout once both listeners
are bound, serves until SIGTERM/SIGINT and exits 0; a bad world or data directory exits 2 with the reason on
stderr, and so does a hub whose password worker died. The audit key comes from ``--audit-key``, else
``RHIN_AUDIT_KEY``, else ``DATA/audit.key`` (see :mod:`.audit`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

from ..ready import announce, settle_heap
from .accounts import ScryptParams
from .audit import DEFAULT_CHECKPOINT_EVERY, AuditSettings
from .routes.auth import LOGIN_QUEUE
from .server import ADMIN_TOKEN_FILE, PKI_DIR, Addresses, HubError, run_hub


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.hub", description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=None, help="stores (default WORLD/hub)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mllp-port", type=int, default=0)
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--soap-port", type=int, default=0, help="PIXv3/PDQv3 (HTTPS unless --plain-mllp)")
    parser.add_argument("--gateways", type=Path, default=None, help="network file with a gateways section")
    parser.add_argument("--scrypt-cost", type=int, default=14, help="log2 of scrypt's N")
    parser.add_argument(
        "--login-queue",
        type=int,
        default=LOGIN_QUEUE,
        help=f"logins that may wait for the password check; one more is answered 503 (default {LOGIN_QUEUE})",
    )
    parser.add_argument(
        "--audit-key", type=Path, default=None, help="audit key file (default DATA/audit.key)"
    )
    parser.add_argument("--audit-checkpoints", type=Path, default=None, help="default DATA/audit.checkpoints")
    parser.add_argument("--audit-checkpoint-every", type=int, default=DEFAULT_CHECKPOINT_EVERY)
    parser.add_argument(
        "--pki", type=Path, default=None, help="TLS files (default DATA/pki; made if missing)"
    )
    parser.add_argument(
        "--plain-mllp", action="store_true", help="plain MLLP, MSH-4 trusted: only for hubs under test"
    )
    args = parser.parse_args(argv)
    if args.login_queue < 0:
        parser.error("--login-queue: 0 or more")
    data = args.data if args.data is not None else args.world / "hub"
    pki = (args.pki if args.pki is not None else data / PKI_DIR).resolve()

    def ready(addresses: Addresses) -> None:
        info = {
            "pid": os.getpid(),
            **{name: list(address) for name, address in addresses.items()},
            "admin_token_file": str((data / ADMIN_TOKEN_FILE).resolve()),
            "data": str(data.resolve()),
            "mllp_tls": None
            if args.plain_mllp
            else {"ca": str(pki / "ca.pem"), "certs": str(pki / "facilities")},
        }
        settle_heap()
        announce(info)

    try:
        settings = AuditSettings(args.audit_key, args.audit_checkpoints, args.audit_checkpoint_every)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        # uvloop: the same asyncio API on libuv, markedly cheaper per request (bench_network); a dependency.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(
            run_hub(
                args.world,
                data,
                args.host,
                args.mllp_port,
                ready,
                http_port=args.http_port,
                soap_port=args.soap_port,
                gateways_file=args.gateways,
                scrypt=ScryptParams(n=2**args.scrypt_cost),
                audit_settings=settings,
                pki=pki,
                plain_mllp=args.plain_mllp,
                login_queue=args.login_queue,
            )
        )
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
