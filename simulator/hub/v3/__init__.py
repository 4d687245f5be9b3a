"""PIXv3 and PDQv3 (IHE ITI-44, ITI-45, ITI-47) over SOAP 1.2 on the hub: see :mod:`.app` for the endpoints
and the sender authentication, :mod:`.soap` for faults, :mod:`.xmlsafe` for what XML is refused, and
:mod:`.transactions` for the mapping onto the v2 decisions."""

from .app import PATHS, CertifiedHttpTools, create_soap_app, observe_handshakes, router
from .transactions import V3Hub

__all__ = ["PATHS", "CertifiedHttpTools", "V3Hub", "create_soap_app", "observe_handshakes", "router"]
