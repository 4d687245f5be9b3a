"""``python -m simulator.containers.reaper --pid PID NETWORK_ID``: remove a container network when the
process that launched it dies without doing so (SIGKILL, a crash, a lost terminal).

Containers are not the launcher's children, so ``PR_SET_PDEATHSIG`` (what keeps the process backend free of
orphans) cannot reach them. :class:`~.network.DockerNetwork` therefore starts this watcher in its own session
(a SIGKILL or Ctrl-C of the launcher's group does not reach it); it waits for PID to end (a pidfd where the
kernel has one, else polling ``kill(pid, 0)`` and the zombie state), then tears down everything labelled
``rhin.network=NETWORK_ID``. A normal stop tears down first and then ends this watcher with SIGTERM, which it
obeys without touching anything.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "wait_for_exit"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie answers kill(0): it has ended all the same
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def wait_for_exit(pid: int, poll: float = 0.5) -> None:
    """Return once ``pid`` has ended."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            select.select([fd], [], [])
        finally:
            os.close(fd)
        return
    while _alive(pid):
        time.sleep(poll)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.containers.reaper", description=__doc__)
    parser.add_argument("network_id")
    parser.add_argument("--pid", type=int, required=True, help="the launcher to watch")
    parser.add_argument("--docker-host", default=None, help="Docker Engine API URL (default: environment)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the launcher is not for the reaper
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    wait_for_exit(args.pid)
    from .engine import connect, teardown  # only now: the watcher waits with nothing loaded

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the teardown, once begun, is finished
    client = connect(args.docker_host)
    for what in teardown(client, args.network_id):
        print(f"reaper: removed {what}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
