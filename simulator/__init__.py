"""The network: reference hub, facility gateways and links, live on sockets or in SimPy time.

Built in later steps (issues "The reference hub" and "Facility gateways and the live network"). It may
import :mod:`synthetic`, never :mod:`harness`.
"""

__all__: list[str] = []
