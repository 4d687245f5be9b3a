"""rhin in containers: the live network started through the Docker Engine API (Docker, or podman's
``system service``) — :mod:`.network` (``rhin up --backend docker``), the teardown by label that also runs
after a crash (:mod:`.teardown`, :mod:`.reaper`), the compose file for a world (:mod:`.compose`) and the
image's health check (:mod:`.health`). Only these modules import the ``docker`` SDK (the ``containers``
extra), and only when they are used: importing this package needs nothing beyond the standard library.
"""

from typing import Final

__all__ = ["GATEWAY_BASE_PORT", "HUB_PORTS"]

HUB_PORTS: Final = {"mllp": 2575, "http": 8080, "soap": 8443}
"""The hub's ports inside its container (published on the host at ports the engine picks)."""
GATEWAY_BASE_PORT: Final = 9000
"""A shard's first facility port inside its container (facility i on 9000+i, its admin API next)."""
