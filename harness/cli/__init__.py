"""``rhin``: the command line. Commands stay thin; the work lives in the parts they call.

:mod:`.app` registers every command (read it first: it is the table of contents); :mod:`.options` holds
what commands share (``fail``, the progress bar, ``--world``, ``--scrypt-cost`` …); one module per concern
holds the commands themselves: :mod:`.world` (generate, world stats), :mod:`.storage` (validate-storage),
:mod:`.hub` (hub, audit verify), :mod:`.network` (up, fault), :mod:`.scenarios` (scenarios
schema/check/list) and :mod:`.run` (run).
"""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
