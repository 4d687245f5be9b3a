"""What-ifs as data: a YAML overlay or ``--what-if key=value`` pairs over :class:`WhatIf`.

Every key is a field below; an unknown key, a wrong type or an impossible value is refused with the key's
name and the list of known keys. Sweeps (``--sweep key=v1,v2,…``) run the model once per value.

Choices where the issue is silent (stated, tested):
* ``patients`` and ``facilities`` scale the *load* the world produces (sessions and feeds ×N; each
  source's entry counts stay those of the world's patients). ``facilities`` also scales the gateways: a
  prefecture added means as many more disclosing facilities on as many more shards.
* ``link`` sets every facility's link type (e.g. ``Internet VPN``); the link parameters are the world's.
* ``down`` is one facility's gateway unreachable from ``down_start_h`` for ``down_hours`` hours: the hub
  waits its per-source timeout for it (as for a link outage, :meth:`simulator.links.LinkModel.sample_delay`).
* Random gateway outages follow ``mtbf_days`` / ``mttr_hours`` per disclosing facility (exponential up and
  down times); the profile gives none, so the default is off (``mtbf_days: 0``).
* ``audit_factor`` multiplies the audit commit (a slower disk); ``hub_cores`` is the hub's worker count.
* ``login_queue`` is how many logins may wait for the password check before the hub answers one more 503
  ``busy`` (the reference hub's :data:`simulator.hub.routes.auth.LOGIN_QUEUE`); ``null`` for a hub that
  queues without a bound (one without it, or a load run made before it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.hub.routes.auth import LOGIN_QUEUE
from synthetic.errors import ProfileError
from synthetic.yamlio import parse_yaml

__all__ = ["WhatIf", "WhatIfError", "apply_pairs", "load_overlay", "parse_sweep"]


class WhatIfError(ValueError):
    """An unknown what-if key or a bad value."""


class WhatIf(BaseModel):
    """The model's knobs (defaults: the world and calibration as they are)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    multiplier: Annotated[float, Field(gt=0, le=100_000)] = 1.0
    patients: Annotated[float, Field(gt=0, le=1000)] = 1.0
    facilities: Annotated[float, Field(gt=0, le=100)] = 1.0
    link: Literal["IP-VPN", "Internet VPN", "Internet"] | None = None
    links: bool = True
    down: str | None = None
    down_start_h: Annotated[float, Field(ge=0)] = 0.0
    down_hours: Annotated[float, Field(ge=0)] = 24.0
    mtbf_days: Annotated[float, Field(ge=0)] = 0.0
    mttr_hours: Annotated[float, Field(gt=0)] = 4.0
    hub_cores: Annotated[int, Field(ge=1, le=1024)] | None = None
    shards: Annotated[int, Field(ge=1, le=1024)] | None = None
    gateway_timeout_ms: Annotated[float, Field(gt=0)] = 5000.0
    audit_factor: Annotated[float, Field(gt=0, le=10_000)] = 1.0
    hub_factor: Annotated[float, Field(gt=0, le=10_000)] = 1.0
    think_scale: Annotated[float, Field(ge=0)] = 1.0
    feeds: bool = True
    login_queue: Annotated[int, Field(ge=0)] | None = LOGIN_QUEUE


def _known() -> str:
    return ", ".join(WhatIf.model_fields)


def _check(data: Mapping[str, Any], where: str) -> WhatIf:
    unknown = sorted(set(data) - set(WhatIf.model_fields))
    if unknown:
        raise WhatIfError(f"{where}: unknown what-if key(s) {', '.join(unknown)} (known: {_known()})")
    try:
        return WhatIf.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise WhatIfError(f"{where}: {problems}") from None


def load_overlay(path: Path, base: WhatIf | None = None) -> WhatIf:
    """A YAML mapping of what-if keys over ``base``."""
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"), str(path))[1] or {}
    except OSError as exc:
        raise WhatIfError(f"{path}: {exc}") from exc
    except ProfileError as exc:  # syntax, or a document beyond parse_yaml's bounds
        raise WhatIfError(str(exc)) from exc
    if not isinstance(data, dict):
        raise WhatIfError(f"{path}: a what-if overlay is a mapping of keys to values")
    return _check({**(base.model_dump(exclude_unset=True) if base else {}), **data}, str(path))


def _value(text: str) -> Any:
    value = yaml.safe_load(text) if text.strip() else None
    return text if isinstance(value, dict | list) else value


def apply_pairs(pairs: Iterable[str], base: WhatIf | None = None) -> WhatIf:
    """``key=value`` strings over ``base``; values are YAML scalars (``2``, ``true``, ``Internet VPN``)."""
    data = base.model_dump(exclude_unset=True) if base else {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise WhatIfError(f"--what-if {pair!r}: write key=value (known keys: {_known()})")
        data[key.strip()] = _value(raw)
    return _check(data, "--what-if")


def parse_sweep(text: str, base: WhatIf) -> tuple[str, list[WhatIf]]:
    """``key=v1,v2,…`` → the key and one :class:`WhatIf` per value."""
    key, sep, raw = text.partition("=")
    if not sep or not raw.strip():
        raise WhatIfError(f"--sweep {text!r}: write key=v1,v2,… (known keys: {_known()})")
    values = [v.strip() for v in raw.split(",") if v.strip()]
    return key.strip(), [apply_pairs([f"{key.strip()}={v}"], base) for v in values]
