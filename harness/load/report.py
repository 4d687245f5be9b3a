"""The load report: ``report.json`` (every figure, readable back) and a self-contained ``report.html``
(inline CSS and SVG, nothing fetched; the SVGs come from :func:`harness.report.plots.figure_svg`, as the run
report's do).

Sections: the verdict (SLOs, consent leaks), per operation count / failures by reason / p50 p95 p99 max,
throughput and latency over time, the step shape's throughput–latency curve with the knee marked,
per-facility request counts on log–log axes (the power law should look like a line), and the CPU and memory
over the run of the hub, its password worker and each gateway shard, with the whole machine's CPU.
``<body data-operations=… data-leaks=…>`` lets a browser test compare what was rendered with the JSON.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from harness.report.plots import plot_svg

from .monitor import MACHINE
from .stats import knee_text

__all__ = ["render_html", "write_report"]


def _throughput(series: dict[str, Any]) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        ax.plot(series["t"], series["per_s"], color="#4c72b0", linewidth=1)
        ax.set_title("throughput (all requests)")
        ax.set_xlabel("s")
        ax.set_ylabel("requests/s")

    return draw


def _latency(series: dict[str, Any]) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        for name, values in sorted(series["p95"].items()):
            points = [(t, v) for t, v in zip(series["t"], values, strict=True) if v is not None]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], linewidth=1, label=name)
        ax.set_title("p95 latency per second, by operation")
        ax.set_xlabel("s")
        ax.set_ylabel("ms")
        if ax.get_legend_handles_labels()[0]:  # a run where nothing succeeded has no line to name
            ax.legend(fontsize=6, frameon=False, ncol=3)
        else:
            ax.text(0.5, 0.5, "no successful request", ha="center", va="center", transform=ax.transAxes)

    return draw


def _facilities(counts: dict[str, int]) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        values = [c for c in counts.values() if c > 0]
        ax.loglog(range(1, len(values) + 1), values, "o", markersize=3, color="#4c72b0")
        ax.set_title("requests per facility (log rank vs log count)")
        ax.set_xlabel("facility rank")
        ax.set_ylabel("requests")

    return draw


def _curve(curve: Sequence[dict[str, Any]], knee: float | None, limit: float | None) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        pts = [p for p in curve if p["p95_ms"] is not None]
        ax.plot([p["per_s"] for p in pts], [p["p95_ms"] for p in pts], "o-", color="#4c72b0", linewidth=1)
        for p in pts:
            ax.annotate(f"{p['multiplier']:g}x", (p["per_s"], p["p95_ms"]), fontsize=6)
        if limit is not None:
            ax.axhline(limit, color="#c44e52", linestyle="--", linewidth=1, label="SLO")
        for p in pts:
            if knee is not None and p["multiplier"] == knee:
                ax.plot(
                    [p["per_s"]], [p["p95_ms"]], "s", color="#c44e52", markersize=8, label=f"knee {knee:g}x"
                )
        ax.set_title("step shape: throughput vs timeline p95")
        ax.set_xlabel("requests/s")
        ax.set_ylabel("ms")
        ax.legend(fontsize=6, frameon=False)

    return draw


def _resources(monitor: dict[str, Any], key: str, title: str) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        for name, info in sorted(monitor.items()):
            rows = info["samples"]
            if rows and not (name == MACHINE and key == "rss_mb"):  # GBs in use would flatten the rest
                ax.plot([r["t"] for r in rows], [r[key] for r in rows], linewidth=1, label=name)
        ax.set_title(title)
        ax.set_xlabel("s")
        ax.legend(fontsize=6, frameon=False, ncol=3)

    return draw


_CSS = """
body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right;font-size:13px}th{background:#eee}
td.l,th.l{text-align:left}.ok{color:#1a7f37}.bad{color:#c0392b;font-weight:bold}
figure.plot{display:inline-block;margin:.4em}h1 span{font-size:70%}
"""


def render_html(report: dict[str, Any]) -> str:
    """The page for a report dict (the JSON's content)."""
    e = html.escape
    ok = report["verdict"]["ok"]
    ops = report["operations"]
    rows = "".join(
        f'<tr class="op" data-op="{e(name)}"><td class="l">{e(name)}</td><td>{o["count"]}</td>'
        f"<td>{o['failures']}</td><td>{o['p50_ms']:.2f}</td><td>{o['p95_ms']:.2f}</td><td>{o['p99_ms']:.2f}</td>"
        f"<td>{o['max_ms']:.2f}</td><td>{o['per_s']:.2f}</td>"
        f'<td class="l">{e("; ".join(f"{k} ×{v}" for k, v in o["failures_by_reason"].items()))}</td></tr>'
        for name, o in ops.items()
    )
    slos = "".join(
        f'<tr><td class="l">{e(s["slo"])}</td><td>{"" if s["value"] is None else s["value"]}</td>'
        f'<td class="{"ok" if s["ok"] else "bad"}">{"held" if s["ok"] else "BROKEN"}</td></tr>'
        for s in report["slo"]
    )
    plots = "".join(
        f'<figure class="plot" id="plot-{e(k)}">{svg}</figure>' for k, svg in report["_svgs"].items()
    )
    leaks = report["verdict"]["consent_leaks"]
    knee = ""
    if report.get("step"):
        knee = f'<p id="knee">{e(knee_text(report["step"]))}</p>'

    facilities = "".join(
        f'<tr><td class="l">{e(code)}</td><td>{n}</td></tr>'
        for code, n in list(report["per_facility"].items())[:30]
    )
    speed = report.get("machine_speed") or {}
    speed_line = ""
    if speed.get("python_ms"):
        speed_line = (
            f'<p id="machine-speed">machine speed over the run (thread CPU, the median of '
            f"{len(speed['readings'])} readings): a fixed piece of Python {speed['python_ms']:.2f} ms, one "
            f"scrypt hash {speed['hash_ms']:.1f} ms (rhin simulate --validate scales its calibration by "
            "these)</p>"
        )
    t = report["totals"]
    title = e(f"{report['target']['name']} · {report['shape']} × {report['multiplier']:g}")
    title += f" · {report['duration_s']:g} s"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rhin load: {"PASSED" if ok else "FAILED"}</title>
<style>{_CSS}</style></head>
<body data-operations="{len(ops)}" data-leaks="{leaks}" data-requests="{t["requests"]}">
<h1 id="verdict" class="{"ok" if ok else "bad"}">{"PASSED" if ok else "FAILED"}
 <span>{title}</span></h1>
<p>consent leaks: <b id="leaks" class="{"bad" if leaks else "ok"}">{leaks}</b> ·
 requests: {t["requests"]} · failures: {t["failures"]} ·
 seed {report["seed"]} · workload {e(report["workload"]["name"])}</p>{knee}
<h2>SLOs</h2><table id="slo-table">
<tr><th class="l">objective</th><th>measured</th><th>result</th></tr>{slos}</table>
<h2>Operations</h2><p>Percentiles are exact (nearest rank over every successful request's own time).</p>
<table id="op-table">
<tr><th class="l">operation</th><th>count</th><th>failures</th><th>p50 ms</th><th>p95 ms</th>
<th>p99 ms</th><th>max ms</th><th>req/s</th><th class="l">failures by reason</th></tr>{rows}</table>
<h2>Plots</h2>{plots}{speed_line}
<h2>Requests per facility (top 30)</h2><table id="facility-table">
<tr><th class="l">facility</th><th>requests</th></tr>
{facilities}</table>
<script>document.body.dataset.renderedOps=document.querySelectorAll('tr.op').length;
document.body.dataset.renderedPlots=document.querySelectorAll('figure.plot svg').length;</script>
</body></html>
"""


def write_report(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    """report.json and report.html in ``folder``; plots are rendered here from the report's figures."""
    folder.mkdir(parents=True, exist_ok=True)
    svgs: dict[str, str] = {}
    series = report["series"]
    if series["t"]:
        svgs["throughput"] = plot_svg("thr", _throughput(series))
        svgs["latency"] = plot_svg("lat", _latency(series))
    if report["per_facility"]:
        svgs["facilities"] = plot_svg("fac", _facilities(report["per_facility"]), (4.0, 2.8))
    step = report.get("step")
    if step and step["curve"]:
        svgs["step"] = plot_svg(
            "step", _curve(step["curve"], step["knee_multiplier"], step["slo_ms"]), (5.0, 3.0)
        )
    monitor = report.get("resources") or {}
    if any(info["samples"] for info in monitor.values()):
        svgs["cpu"] = plot_svg("cpu", _resources(monitor, "cpu_pct", "CPU % of one core"))
        svgs["memory"] = plot_svg("mem", _resources(monitor, "rss_mb", "resident memory, MB"))
    paths = {"json": folder / "report.json", "html": folder / "report.html"}
    paths["json"].write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths["html"].write_text(render_html({**report, "_svgs": svgs}), encoding="utf-8")
    return paths
