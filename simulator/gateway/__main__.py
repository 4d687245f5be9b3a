"""``python -m simulator.gateway``: one shard of facility gateways as a process.

Prints exactly one line on stdout once every listener is bound — ``ready: {json}`` with the
:data:`~simulator.gateway.shard.ReadyInfo` — then serves until SIGTERM or SIGINT and exits 0. Logs and errors
go to stderr; a bad world or facility exits 2 before anything listens.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ..ready import announce, settle_heap
from .errors import GatewayError
from .faults import ADMIN_TOKEN_ENV
from .shard import ReadyInfo, serve_gateways

log = logging.getLogger("simulator.gateway")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulator.gateway", description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=Path, required=True, help="world directory (rhin generate)")
    parser.add_argument(
        "--facilities", default=None, help="CODE[,CODE...] to serve (default: every disclosing facility)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address of every listener (default 127.0.0.1)")
    parser.add_argument("--no-links", action="store_true", help="no link delay or bandwidth pacing")
    parser.add_argument("--seed", type=int, default=None, help="link random seed (default: the world's)")
    parser.add_argument(
        "--admin-token", default=None, help=f"admin API bearer token (default: ${ADMIN_TOKEN_ENV})"
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=0,
        help="facility i on BASE+i, admin next (default: free)",
    )
    parser.add_argument("--grace", type=float, default=2.0, help="seconds to finish replies on stop")
    parser.add_argument("--log-level", default="WARNING", help="stderr log level (default WARNING)")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready(info: ReadyInfo) -> None:
        settle_heap()
        announce(info)

    codes = [c.strip() for c in args.facilities.split(",") if c.strip()] if args.facilities else None
    await serve_gateways(
        args.world,
        codes,
        host=args.host,
        links=not args.no_links,
        seed=args.seed,
        admin_token=args.admin_token,
        ready=ready,
        stop=stop,
        grace=args.grace,
        base_port=args.base_port,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    if not (args.admin_token or os.environ.get(ADMIN_TOKEN_ENV)):
        log.warning("no --admin-token nor $%s: the admin API refuses every request", ADMIN_TOKEN_ENV)
    try:
        asyncio.run(_run(args))
    except GatewayError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
