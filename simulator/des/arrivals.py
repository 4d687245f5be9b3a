"""Where the model's work comes from: viewer sessions (a Poisson process, or Locust's paced users), ITI-8
feeds, the "facility joins" burst, and gateway outages.

Two arrival processes, both following the workload's shape (:class:`simulator.workload.Rates`) × the
what-if multipliers:

* ``poisson`` (the default, for capacity questions): sessions arrive as a Poisson process thinned to the
  instantaneous rate — independent clinicians.
* ``paced`` (replaying a ``rhin load`` run): what Locust does (``loadtests.shapes.RhinShape`` and
  ``constant_pacing``). Every second the shape asks for ``max(1, ceil(rate × pacing))`` users; new users
  start together (the spawn rate is the whole pool per second, so Locust dispatches them in one batch);
  each starts a session, and the next one ``pacing`` seconds after the last started, or at once when a
  session took longer. Users beyond a falling target stop after their session (Locust stops them at
  once; the difference is one session each). With ``processes`` workers, user ``u`` is worker
  ``u mod processes``'s and takes that worker's session numbers ``w, w + P, w + 2P…`` as Locust's workers
  do. Paced users start in bursts and queue behind each other at login: that, not the mean rate, is
  what a Locust run's latencies show, and a Poisson model does not. Replaying a run, the pool can follow
  the user count Locust itself recorded (``users_series``: seconds since the start → viewers), which
  is what it ran, whatever it was asked for.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator

from simpy.events import Timeout

from simulator.workload import PlannedSession, Rates

from .figures import Proc, launch
from .sessions import SessionSteps

__all__ = ["Arrivals"]


class Arrivals(SessionSteps):
    """The arrival processes; :class:`.model.DesModel` starts them."""

    rates: Rates
    load_scale: float
    join_burst: bool
    users_series: tuple[tuple[float, int], ...]
    _first_session: int

    def _poisson(self, until: float, rate_1x: float) -> Iterator[float]:
        """Arrival times of a Poisson process at ``rate_1x`` × the shape's multiplier × the what-if scale,
        from now until ``until`` (the caller waits for each): thinned from the shape's piecewise majorant
        (:meth:`Rates.bound`) — exact, and a candidate is drawn and rejected only where the shape is not
        flat."""
        scale = rate_1x * self.load_scale
        rng = self.rng
        t = self.env.now
        end = -math.inf  # the current piece of the majorant: top on [.., end)
        top = 0.0
        while t < until:
            if t >= end:  # a new piece (within one, ``bound`` gives the same piece: asked once)
                piece = self.rates.bound(t)
                if piece is None:
                    return
                top, end = piece[0] * scale, min(piece[1], until)
            if top <= 0:
                t = end
                continue
            t += rng.expovariate(top)
            if t >= end:  # none in this piece: the process starts afresh at its end (memoryless)
                t = end
                continue
            m = self.rates.multiplier_at(t)
            if m is None:
                return
            if m * scale >= top or rng.random() * top <= m * scale:
                yield t

    def _sessions(self, until: float) -> Proc:
        """Each arrival's session is launched once the next arrival is scheduled (:func:`.figures.launch`:
        the session's lookahead must see it) — the order SimPy's processes had: the arrival process
        drew the next arrival before the new session ran its first step."""
        index = self._first_session
        env = self.env
        plan = self.world.plan
        arrived: PlannedSession | None = None
        for t in self._poisson(until, self.rates.peak_per_s):
            nxt = Timeout(env, t - env.now)
            if arrived is not None:
                launch(self._session(arrived))
            yield nxt
            arrived = plan.session(index)
            index += 1
        if arrived is not None:
            launch(self._session(arrived))

    def _paced(self, until: float, pacing_s: float, processes: int) -> Proc:
        """Locust's user pool, one tick a second (see the module docstring); with ``users_series`` the
        pool the run really had (Locust's own user count over time, less its feeder)."""
        counters = [itertools.count(self._first_session + w, processes) for w in range(processes)]
        running: list[list[bool]] = []
        env = self.env
        series = self.users_series
        while env.now < until:
            rate = self.rates.sessions_per_s(env.now)
            if rate is None:
                break
            target = max(1, math.ceil(rate * self.load_scale * pacing_s - 1e-9))
            if series:
                at = bisect.bisect_right(series, (env.now, math.inf)) - 1
                target = series[max(at, 0)][1]
            while len(running) < target:
                flag = [True]
                env.process(self._user(flag, counters[len(running) % processes], until, pacing_s))
                running.append(flag)
            while len(running) > target:
                running.pop()[0] = False
            yield env.timeout(1.0)
        for flag in running:
            flag[0] = False

    def _user(self, active: list[bool], numbers: Iterator[int], until: float, pacing_s: float) -> Proc:
        env = self.env
        while active[0] and env.now < until:
            started = env.now
            yield from self._session(self.world.plan.session(next(numbers)))
            wait = pacing_s - (env.now - started)
            if wait > 0:
                yield env.timeout(wait)

    def _feeds(self, until: float, rate_1x: float, register_share: float) -> Proc:
        """ITI-8 registers and updates, each on a new connection as Locust's feeder sends them
        (``feed_fresh``: the TLS handshake in the hub's and the client's part)."""
        env = self.env
        op = ""
        for t in self._poisson(until, rate_1x):
            nxt = Timeout(env, t - env.now)
            if op:
                launch(self._timed(op, "feed_fresh"))  # as :meth:`_sessions` launches
            yield nxt
            op = "feed_register" if self.rng.random() < register_share else "feed_update"
        if op:
            launch(self._timed(op, "feed_fresh"))

    def _burst(self) -> Proc:
        yield self.env.timeout(self.workload.feeds.join_at_s)
        tail = 0.0
        for _ in self.world.plan.join_burst():  # one after the other, each when the last was answered
            tail = (yield from self._timed("feed_join", "feed", before=tail)) or 0.0

    def _outage(self, code: str) -> Proc:
        up = self.w.mtbf_days * 86_400
        down = self.w.mttr_hours * 3600
        while True:
            yield self.env.timeout(self.rng.expovariate(1 / up))
            self.down.add(code)
            yield self.env.timeout(self.rng.expovariate(1 / down))
            self.down.discard(code)

    def _named_down(self, code: str) -> Proc:
        start = self.w.down_start_h * 3600
        end = start + self.w.down_hours * 3600
        if self.env.now >= end:
            return
        yield self.env.timeout(max(0.0, start - self.env.now))
        self.down.add(code)
        yield self.env.timeout(end - self.env.now)
        self.down.discard(code)
