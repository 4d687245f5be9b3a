"""The model's report: ``report.json`` (every figure) and a self-contained ``report.html`` (inline CSS and
SVG from :func:`harness.report.plots.figure_svg`, as the run and load reports; nothing fetched).

Sections: per run (each what-if) the predicted p50/p95/p99 per operation, throughput, resource utilisation
and queues, the share of partial timelines and the consent outcome; for a sweep, latency and utilisation
against the swept value with the knee marked; for ``--validate``, predicted beside measured per operation.
``<body data-runs=… data-operations=…>`` lets a browser test compare the page with the JSON.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from harness.report.plots import plot_svg
from simulator.workload import OPERATIONS

from .validate import beyond_goals_text, service_times_text

__all__ = ["knee_text", "render_html", "write_report"]


def knee_text(k: dict[str, Any]) -> str:
    """A sweep's knee in words: reached (held … broke …), beyond the sweep, or below its first value."""
    held, broke, slo = k.get("multiplier"), k.get("broke"), k["slo_ms"]
    if held is None:
        return f"knee (timeline p95 < {slo:g} ms): below the first value ({broke:g}× broke the SLO)"
    if broke is None:
        return f"knee (timeline p95 < {slo:g} ms): not reached — the SLO held up to {held:g}×, the last value"
    return f"knee (timeline p95 < {slo:g} ms): {held:g}× the realistic peak held the SLO; {broke:g}× broke it"


def _ordered(ops: dict[str, Any]) -> list[tuple[str, Any]]:
    """Operations in the load report's order (login … feeds), unknown ones last."""
    rank = {op: i for i, op in enumerate(OPERATIONS)}
    return sorted(ops.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def _sweep_latency(report: dict[str, Any]) -> Callable[[Any], None]:
    sweep = report["sweep"]

    def draw(ax: Any) -> None:
        xs = sweep["values"]
        for op in ("timeline", "fetch", "login"):
            ys = [r["operations"].get(op, {}).get("p95_ms") for r in report["runs"]]
            pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", linewidth=1, label=f"{op} p95")
        knee = report.get("knee") or {}
        if knee.get("slo_ms") is not None:
            ax.axhline(knee["slo_ms"], color="#c44e52", linestyle="--", linewidth=1, label="SLO")
        if knee.get("multiplier") is not None and knee.get("broke") is not None:  # a knee inside the sweep
            ax.axvline(knee["multiplier"], color="#c44e52", linestyle=":", linewidth=1, label="knee (held)")
        if all(isinstance(x, int | float) and x > 0 for x in xs):
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"predicted p95 vs {sweep['key']}")
        ax.set_xlabel(sweep["key"])
        ax.set_ylabel("ms")
        ax.legend(fontsize=6, frameon=False)

    return draw


def _sweep_utilisation(report: dict[str, Any]) -> Callable[[Any], None]:
    sweep = report["sweep"]

    def draw(ax: Any) -> None:
        xs = sweep["values"]
        names = sorted(report["runs"][0]["resources"])
        for name in names:
            ys = [r["resources"].get(name, {}).get("utilisation", 0.0) for r in report["runs"]]
            ax.plot(xs, ys, "o-", linewidth=1, label=name)
        if all(isinstance(x, int | float) and x > 0 for x in xs):
            ax.set_xscale("log")
        ax.set_title(f"utilisation vs {sweep['key']}")
        ax.set_xlabel(sweep["key"])
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=6, frameon=False)

    return draw


def _validation(rows: list[dict[str, Any]]) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        pts = [r for r in rows if r["measured_p95_ms"] and r["predicted_p95_ms"]]
        for r in pts:
            x, y = r["measured_p95_ms"], r["predicted_p95_ms"]
            xs = _span(r.get("measured_runs_p95_ms"), x)
            ys = _span(r.get("predicted_replicas_p95_ms"), y)
            ax.errorbar([x], [y], xerr=[[xs[0]], [xs[1]]], yerr=[[ys[0]], [ys[1]]], fmt="o", color="#4c72b0",
                        elinewidth=0.8, capsize=2, markersize=4)  # fmt: skip
            ax.annotate(r["operation"], (x, y), fontsize=6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        if pts:
            lo = min(min(r["measured_p95_ms"], r["predicted_p95_ms"]) for r in pts)
            hi = max(max(r["measured_p95_ms"], r["predicted_p95_ms"]) for r in pts)
            ax.plot([lo, hi], [lo, hi], color="#999", linewidth=1, linestyle="--")
        ax.set_title("p95: predicted vs measured (ms; bars: each run, each replica)")
        ax.set_xlabel("measured")
        ax.set_ylabel("predicted")

    return draw


def _span(values: list[float | None] | None, centre: float) -> tuple[float, float]:
    """How far below and above ``centre`` the values reach (error bars; none for one value)."""
    seen = [v for v in values or [] if v is not None]
    if not seen:
        return 0.0, 0.0
    return max(0.0, centre - min(seen)), max(0.0, max(seen) - centre)


_CSS = """
body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right;font-size:13px}th{background:#eee}
td.l,th.l{text-align:left}.ok{color:#1a7f37}.bad{color:#c0392b;font-weight:bold}
figure.plot{display:inline-block;margin:.4em}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _run_html(i: int, run: dict[str, Any], e: Callable[[str], str]) -> str:
    ops = "".join(
        f'<tr class="op" data-run="{i}" data-op="{e(n)}"><td class="l">{e(n)}</td><td>{o["count"]}</td>'
        f"<td>{o['failures']}</td><td>{o['refused']}</td><td>{o['p50_ms']:.2f}</td><td>{o['p95_ms']:.2f}</td>"
        f"<td>{o['p99_ms']:.2f}</td><td>{o['per_s']:.4g}</td></tr>"
        for n, o in _ordered(run["operations"])
    )
    res = "".join(
        f'<tr><td class="l">{e(n)}</td><td>{r["capacity"]}</td><td>{r["utilisation"]:.3f}</td>'
        f"<td>{r['mean_queue']:.3f}</td><td>{r['mean_wait_ms']:.3f}</td></tr>"
        for n, r in run["resources"].items()
    )
    leaks = run["consent_leaks"]
    whatif = e(json.dumps(run["whatif"], ensure_ascii=False)) or "{}"
    return f"""<h2>Run {i + 1}: what-if {whatif}</h2>
<p>sessions {run["sessions"]} ({run["sessions_per_s"]:.4g}/s) · throughput {run["throughput_per_s"]:.4g}
 requests/s · partial timelines {run["partial_share"] * 100:.2f} % · consent leaks
 <b class="{"bad" if leaks else "ok"}">{leaks}</b> · {run["events"]} events in {run["wall_s"]} s</p>
<table class="ops"><tr><th class="l">operation</th><th>count</th><th>failures</th><th>refused</th>
<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>req/s</th></tr>{ops}</table>
<table class="res"><tr><th class="l">resource</th><th>capacity</th><th>utilisation</th><th>mean queue</th>
<th>mean wait ms</th></tr>{res}</table>"""


def _replay_html(v: dict[str, Any], e: Callable[[str], str]) -> str:
    """The replay's conditions, the throughput and (a step run) the knees, in words."""
    r = v.get("replay", {})
    t = v["throughput"]
    err = "" if t["error"] is None else f" ({t['error'] * 100:+.1f} %)"
    parts = [
        f"replay: {e(str(r.get('arrivals', 'poisson')))} arrivals, pacing {_fmt(r.get('pacing_s'))} s, "
        f"{_fmt(r.get('processes'))} generator process(es) at {_fmt(r.get('client_cpu_ms_per_request'))} ms "
        f"CPU per request, shared cores: {_fmt(r.get('machine_cores')) or 'no'}",
        f"throughput: measured {t['measured_per_s']:.4g}/s, predicted {t['predicted_per_s']:.4g}/s{err}; "
        f"{v['within_goal']} of {v['judged']} judged operations within the goals{e(beyond_goals_text(v))}",
    ]
    cpu = v.get("cpu") or {}
    if cpu:
        pairs = ", ".join(
            f"{e(n)} {_fmt(c.get('measured_pct'))}/{_fmt(c.get('predicted_pct'))}" for n, c in cpu.items()
        )
        parts.append(f"CPU, measured/predicted (% of one core): {pairs}")
    parts.append(e(service_times_text(r.get("service_times"))))
    k = v.get("knee")
    if k:
        parts.append(
            f"knee (timeline p95 &lt; {k['slo_ms']:g} ms): measured {_fmt(k['measured']['held'])}×, "
            f"predicted {_fmt(k['predicted']['held'])}×"
        )
    return "".join(f'<p class="replay">{p}</p>' for p in parts)


def _spread_html(v: dict[str, Any], e: Callable[[str], str]) -> str:
    """Each live run's and each model replica's p50 and p95, when there are several, and how far one live
    run misses another."""
    rows = [r for r in v["rows"] if "measured_runs_p50_ms" in r or "predicted_replicas_p50_ms" in r]
    if not rows:
        return ""

    def cell(r: dict[str, Any], key: str) -> str:
        return f"<td>{' · '.join(_fmt(x) for x in r.get(key) or [])}</td>"

    body = "".join(
        f'<tr class="spread"><td class="l">{e(r["operation"])}</td>'
        + "".join(cell(r, k) for k in _SPREAD_COLUMNS)
        + f"<td>{_fmt(None if r.get('live_spread') is None else round(r['live_spread'] * 100, 1))}</td></tr>"
        for r in rows
    )
    summary = ""
    if v.get("live_within_goal") is not None:
        summary = (
            f'<p class="replay">{v["replications"]} model replica(s) per live run; one live run predicts '
            f"another within the goals on {v['live_within_goal']} of {v['judged']} judged operations</p>"
        )
    heads = "<th>p50 each run</th><th>p50 each replica</th><th>p95 each run</th><th>p95 each replica</th>"
    return f"""{summary}<table id="spread"><tr><th class="l">operation</th>{heads}
<th>live spread %</th></tr>{body}</table>"""


_SPREAD_COLUMNS = (
    "measured_runs_p50_ms",
    "predicted_replicas_p50_ms",
    "measured_runs_p95_ms",
    "predicted_replicas_p95_ms",
)


def _step_curves(knee: dict[str, Any]) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        for side, style in (("measured", "s-"), ("predicted", "o--")):
            pts = [(p["multiplier"], p["p95_ms"]) for p in knee[side]["curve"] if p.get("p95_ms")]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], style, linewidth=1, label=side)
        ax.axhline(knee["slo_ms"], color="#c44e52", linestyle="--", linewidth=1, label="SLO")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title("step run: timeline p95 per step")
        ax.set_xlabel("multiplier")
        ax.set_ylabel("ms")
        ax.legend(fontsize=6, frameon=False)

    return draw


def render_html(report: dict[str, Any], svgs: dict[str, str]) -> str:
    e = html.escape
    runs = "".join(_run_html(i, r, e) for i, r in enumerate(report["runs"]))
    plots = "".join(f'<figure class="plot" id="plot-{e(k)}">{svg}</figure>' for k, svg in svgs.items())
    knee = f'<p id="knee">{e(knee_text(report["knee"]))}</p>' if report.get("knee") else ""
    validation = ""
    if report.get("validation"):
        v = report["validation"]
        rows = "".join(
            f'<tr class="val"><td class="l">{e(r["operation"])}</td>'
            + "".join(f"<td>{_fmt(r[c])}</td>" for c in _VAL_COLUMNS)
            + f"<td>{ {True: 'met', False: 'missed', None: '-'}[r['within_goal']] }</td></tr>"
            for r in v["rows"]
        )
        heads = "".join(f"<th>{e(_VAL_HEADS.get(c, c))}</th>" for c in _VAL_COLUMNS) + "<th>goal</th>"
        against = v.get("load_reports") or [v["load_report"]]
        validation = f"""<h2>Validation against {e(", ".join(against))}</h2>
{_replay_html(v, e)}{_spread_html(v, e)}
<table id="validation"><tr><th class="l">operation</th>{heads}</tr>{rows}</table>"""
    cal = report["calibration"]
    n_ops = sum(len(r["operations"]) for r in report["runs"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rhin simulate</title><style>{_CSS}</style></head>
<body data-runs="{len(report["runs"])}" data-operations="{n_ops}">
<h1>rhin simulate · {e(report["world"])} · {report["duration_s"]:g} s simulated</h1>
<p>seed {report["seed"]} · workload {e(report["workload"]["name"])} · calibration {e(cal["source"])}
 ({e(cal["date"])}, {cal["machine"]["cores"]} cores)</p>{knee}
{validation}<h2>Plots</h2>{plots}{runs}
<script>document.body.dataset.renderedOps=document.querySelectorAll('tr.op').length;
document.body.dataset.renderedPlots=document.querySelectorAll('figure.plot svg').length;</script>
</body></html>
"""


_VAL_COLUMNS = (
    "measured_count",
    "predicted_count",
    "measured_p50_ms",
    "predicted_p50_ms",
    "p50_error",
    "measured_p95_ms",
    "predicted_p95_ms",
    "p95_error",
    "measured_per_s",
    "predicted_per_s",
    "per_s_error",
)


_VAL_HEADS = {
    "measured_count": "n meas",
    "predicted_count": "n pred",
    "measured_p50_ms": "p50 meas",
    "predicted_p50_ms": "p50 pred",
    "p50_error": "err",
    "measured_p95_ms": "p95 meas",
    "predicted_p95_ms": "p95 pred",
    "p95_error": "err",
    "measured_per_s": "req/s meas",
    "predicted_per_s": "req/s pred",
    "per_s_error": "err",
}


def write_report(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    """report.json and report.html in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    svgs: dict[str, str] = {}
    if report.get("sweep") and len(report["runs"]) > 1:
        svgs["latency"] = plot_svg("lat", _sweep_latency(report), (5.0, 2.8))
        svgs["utilisation"] = plot_svg("util", _sweep_utilisation(report), (5.0, 2.8))
    if report.get("validation"):
        svgs["validation"] = plot_svg("val", _validation(report["validation"]["rows"]), (5.0, 2.8))
        if report["validation"].get("knee"):
            svgs["step"] = plot_svg("step", _step_curves(report["validation"]["knee"]), (5.0, 2.8))
    paths = {"json": folder / "report.json", "html": folder / "report.html"}
    paths["json"].write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths["html"].write_text(render_html(report, svgs), encoding="utf-8")
    return paths
