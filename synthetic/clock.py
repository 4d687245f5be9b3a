"""The network's one time zone and wall clock.

Japanese systems write local time: HL7 MSH-7 and TS values, CDA ``effectiveTime``
and the hub's consent dates are JST (UTC+09:00, no daylight saving). World times are
naive datetimes already on that clock; the live network (hub, scenario engine) reads
the wall clock through :func:`jst_now` and takes a ``clock`` callable wherever a test
or a replay needs a fixed time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Final

__all__ = ["JST", "Clock", "jst_now"]

JST: Final = dt.timezone(dt.timedelta(hours=9), "JST")

Clock = Callable[[], dt.datetime]
"""A source of aware JST datetimes; :func:`jst_now` live, a fixed or stepping function in tests."""


def jst_now() -> dt.datetime:
    """Wall time in JST, aware (the live network's clock)."""
    return dt.datetime.now(JST)
