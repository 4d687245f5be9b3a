"""Probing HTTP steps, beyond what a client library sends: ``login_probe`` (can a caller tell which user IDs
exist, by reply or by timing?) and ``http_raw`` (one raw HTTP/1.1 request over a plain socket)."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import statistics
import time
import urllib.parse
from typing import Any

from harness.hubclient import HttpOutcome, HubClient, HubClientError

from .actions import HttpRaw, LoginProbe
from .context import Context
from .errors import StepError
from .hubcalls import Outcome, acting_session, base_url, call, http_exchange, new_client, show_body
from .results import Exchange
from .runners import runs
from .subjects import MISSING, HttpObservation

__all__ = ["run_http_raw", "run_login_probe"]


def _probe_users(ctx: Context, a: LoginProbe) -> list[tuple[str, str]]:
    """(facility, user ID) of real users no other step logs in as (not the first of their kind there)."""
    codes = [ctx.facility(a.facility).code] if a.facility else sorted(ctx.target.users)
    picked: list[tuple[str, str]] = []
    for code in codes:
        seen: set[str] = set()
        for u in ctx.target.users.get(code, ()):
            if u.viewer_kind in seen:
                picked.append((code, u.user_id))
            seen.add(u.viewer_kind)
    if len(picked) < a.users:
        raise StepError(f"login_probe needs {a.users} spare users; the target has {len(picked)}")
    # Spread over facilities, and rotated by the scenario's tag, so that runs one after another (other
    # salts) mostly try other users: each user's failures stay well under the lockout.
    step, offset = len(picked) / a.users, int(ctx.tag, 16) % len(picked)
    return [picked[(offset + int(i * step)) % len(picked)] for i in range(a.users)]


def _detail(out: HttpOutcome, user_id: str) -> str:
    body = out.json()
    detail = body.get("detail") if isinstance(body, dict) else body
    return json.dumps(detail, ensure_ascii=False, sort_keys=True).replace(user_id, "<user>")


def _retry_after(out: HttpOutcome) -> float:
    value = next((v for k, v in out.headers.items() if k.lower() == "retry-after"), "0")
    return float(value) if value.isdigit() else 0.0


def _reset_users(ctx: Context, client: HubClient, users: list[tuple[str, str]], wait: float) -> Exchange:
    """Clean-up, not an assertion: once the back-off is over, each real user logs in with the right password
    (which clears their failures on a hub that counts them per user) and out again, so later runs and other
    scenarios find them as they were."""
    time.sleep(wait)
    done = 0
    for code, user_id in users:
        password = ctx.user(code, None, user_id)[1]
        with contextlib.suppress(HubClientError):
            if client.login(code, user_id, password).status == 200:
                done += 1
                client.logout()
    note = f"waited {wait:.0f} s, then {done} of {len(users)} real users logged in and out again"
    return Exchange("http", "login probe clean-up", "right passwords", note, 0.0)


@runs(LoginProbe)
def run_login_probe(ctx: Context, a: LoginProbe) -> Outcome:
    """See :class:`~.model.LoginProbe`. Attempts alternate known/unknown, and which of a pair goes first,
    so drift and order effects hit both alike."""
    known = _probe_users(ctx, a)
    unknown = [(code, f"zz{ctx.tag}{i:03d}") for i, (code, _) in enumerate(known)]
    password = ctx.text(a.password)
    wait = 0.0
    results: dict[str, dict[str, list[Any]]] = {
        side: {"statuses": [], "second_statuses": [], "bodies": [], "times_ms": []}
        for side in ("known", "unknown")
    }
    exchanges: list[Exchange] = []
    client = new_client(ctx)
    try:
        for n, pair in enumerate(zip(known, unknown, strict=True)):
            sides = list(zip(("known", "unknown"), pair, strict=True))
            for side, (code, user_id) in sides if n % 2 == 0 else sides[::-1]:  # ABBA: no side goes first
                attempt = functools.partial(client.login, code, user_id, password)
                first = call(ctx, attempt)
                second = call(ctx, attempt)
                r = results[side]
                r["statuses"].append(first.status)
                r["second_statuses"].append(second.status)
                r["bodies"].append(_detail(first, user_id))
                r["times_ms"].append(round(first.elapsed_ms, 3))
                if len(exchanges) < 4:
                    exchanges.append(http_exchange(f"login {code}/{user_id} ({side}, wrong password)", first))
                wait = max(wait, _retry_after(second))
        exchanges.append(_reset_users(ctx, client, known, min(wait, 10.0)))
    finally:
        client.close()
    summary: dict[str, Any] = {}
    for side, r in results.items():
        summary[side] = {
            "statuses": sorted(set(r["statuses"])),
            "second_statuses": sorted(set(r["second_statuses"])),
            "bodies": sorted(set(r["bodies"])),
            "median_ms": round(statistics.median(r["times_ms"]), 3),
            "times_ms": r["times_ms"],
        }
    summary["same_body"] = summary["known"]["bodies"] == summary["unknown"]["bodies"]
    summary["median_ratio"] = round(
        summary["known"]["median_ms"] / max(summary["unknown"]["median_ms"], 1e-6), 4
    )
    body = json.dumps(summary, ensure_ascii=False).encode()
    obs = HttpObservation(200, {"content-type": "application/json"}, body, 0.0, summary)
    note = Exchange(
        "http", "login probe summary", f"{len(known)} known and unknown users", body.decode(), 0.0
    )
    return obs, [*exchanges, note]


def _raw_request(ctx: Context, a: HttpRaw, token: str | None) -> tuple[bytes, bytes, float]:
    """Send one request exactly as described; (request head, response bytes, elapsed ms)."""
    url = urllib.parse.urlsplit(base_url(ctx))
    host, port = url.hostname or "127.0.0.1", url.port or 80
    body = ctx.text(a.body).encode("utf-8") + b"x" * a.pad
    head = [f"{a.method} {ctx.text(a.path)} HTTP/1.1".encode(), f"Host: {host}:{port}".encode()]
    head.append(b"Connection: close")
    head.append(b"Content-Type: application/json")
    if a.bearer_hex is not None:
        try:
            token_bytes = bytes.fromhex(ctx.text(a.bearer_hex))
        except ValueError as exc:
            raise StepError(f"bearer_hex is not hex digits: {exc}") from exc
        head.append(b"Authorization: Bearer " + token_bytes)
    elif token is not None:
        head.append(f"Authorization: Bearer {token}".encode())
    if a.chunked:
        head.append(b"Transfer-Encoding: chunked")
    elif a.content_length is not None or body:
        head.append(
            f"Content-Length: {a.content_length if a.content_length is not None else len(body)}".encode()
        )
    started = time.perf_counter()
    chunks: list[bytes] = []
    with socket.create_connection((host, port), timeout=a.timeout_ms / 1000) as sock:
        try:
            sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
            if a.chunked:
                for i in range(0, len(body), 65536):
                    piece = body[i : i + 65536]
                    sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body was sent: read what it said
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"\r\n".join(head), b"".join(chunks), (time.perf_counter() - started) * 1000


@runs(HttpRaw)
def run_http_raw(ctx: Context, a: HttpRaw) -> Outcome:
    """See :class:`~.model.HttpRaw`; a response that cannot be parsed is status 0."""
    extra: list[Exchange] = []
    token = None
    if a.by is not None or a.session is not None:
        client, extra = acting_session(ctx, a)
        token = client.token
    try:
        head, raw, elapsed = _raw_request(ctx, a, token)
    except OSError as exc:
        raise StepError(f"raw HTTP request: {exc}") from exc
    top, _, rest = raw.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    match = re.match(r"HTTP/1\.[01] (\d{3})", lines[0]) if lines else None
    status = int(match.group(1)) if match else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:]) if k}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, data = b"", rest
        while data:
            size_text, _, data = data.partition(b"\r\n")
            size = int(size_text.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            body, data = body + data[:size], data[size + 2 :]
        rest = body
    try:
        parsed: Any = json.loads(rest) if rest else MISSING
    except ValueError:
        parsed = MISSING
    obs = HttpObservation(status, headers, rest, elapsed, parsed)
    shown = head.decode("latin-1") + (f"\n<{len(ctx.text(a.body)) + a.pad} body bytes>" if a.pad else "")
    content_type = headers.get("content-type", "")
    response = f"HTTP {status} {content_type}\n{show_body(rest, content_type)}"
    return obs, [*extra, Exchange("http", f"raw {a.method} {ctx.text(a.path)}", shown, response, elapsed)]
