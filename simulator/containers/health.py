"""``python -m simulator.containers.health``: the image's HEALTHCHECK, with the standard library only (it
runs every few seconds in every container, so it must start fast: no rhin CLI, no third-party imports).

Choice: the role's health URL comes from ``$RHIN_HEALTH_URL`` (the hub: ``http://127.0.0.1:8080/health``; a
gateway shard: its admin port's ``/health``). A role that serves nothing (``rhin run``, ``rhin load``, the
bootstrap) leaves it unset and is healthy while its process runs: exit 0. Exit 1 when the URL does not
answer 200 within the timeout, with the reason on stderr (what ``docker inspect`` shows).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

__all__ = ["HEALTH_ENV", "check"]

HEALTH_ENV = "RHIN_HEALTH_URL"


def check(url: str | None, timeout: float = 2.0) -> str | None:
    """None when ``url`` answers 200 (or there is no URL to ask); else why not."""
    if not url:
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return None if reply.status == 200 else f"{url}: HTTP {reply.status}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"


def main() -> int:
    problem = check(os.environ.get(HEALTH_ENV))
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
