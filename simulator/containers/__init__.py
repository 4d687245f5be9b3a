"""rhin in containers: the live network started through the Docker Engine API (Docker, or podman's
``system service``) — :mod:`.network` (``rhin up --backend docker``), the teardown by label that also runs
after a crash (:mod:`.teardown`, :mod:`.reaper`), the compose file for a world (:mod:`.compose`) and the
image's health check (:mod:`.health`). Only these modules import the ``docker`` SDK (the ``containers``
extra), and only when they are used: importing this package needs nothing beyond the standard library.
"""
