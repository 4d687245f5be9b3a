"""The hub's HTTP routes: one :class:`fastapi.APIRouter` per concern, on the dependencies of :mod:`..deps`
(the services, the logged-in user, the operator). Each module holds its routes, its request bodies
(``...Request``), its answers (``...Reply``, with ``...View`` for their parts) and its docstring's choices.

==============  ===========================================================================
:mod:`.auth`     ``/health``, ``/auth/login``, ``/auth/logout``
:mod:`.patients` ``/patients/{id}``, ``/links``
:mod:`.consent`  ``/patients/{id}/consents`` and its additions and withdrawals
:mod:`.emergency` ``/patients/{id}/emergency``
:mod:`.audit`    ``/patients/{id}/access-report``, ``/audit``, ``/audit/verify``
:mod:`.records`  ``/patients/{id}/timeline``, ``/patients/{id}/entries/...``
==============  ===========================================================================

A new concern is a new module with a ``router``, added to :data:`ROUTERS` (or passed to
:func:`..api.create_app`'s ``routers``): the app, its error answers and its body limit stay as they are.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter

from . import audit, auth, consent, emergency, patients, records

__all__ = ["ROUTERS"]

ROUTERS: Final[tuple[APIRouter, ...]] = (
    auth.router,
    patients.router,
    consent.router,
    emergency.router,
    audit.router,
    records.router,
)
"""In this order in the app and in its OpenAPI document."""
