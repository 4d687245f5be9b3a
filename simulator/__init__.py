"""The network: the reference hub (:mod:`.hub`), facility gateways (:mod:`.gateway`), link models
(:mod:`.links`), the live-network launcher (:mod:`.network`) and its bootstrap (:mod:`.bootstrap`); the SimPy
model comes later. It may import :mod:`synthetic`, never :mod:`harness`.
"""

__all__: list[str] = []
