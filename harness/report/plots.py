"""Latency plots as inline SVG (matplotlib, Agg): no image files, no fonts or scripts fetched from anywhere.

Text is drawn as paths (``svg.fonttype = path``), so the SVG shows the same everywhere; labels stay ASCII
(step kinds, milliseconds). Element IDs are prefixed per plot so several SVGs can live in one HTML page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from harness.scenarios.results import percentile

__all__ = ["figure_svg", "histogram_svg", "plot_svg"]


def plot_svg(prefix: str, draw: Callable[[Any], None], size: tuple[float, float] = (6.0, 2.6)) -> str:
    """One plot (``draw(ax)`` fills the axes) as an ``<svg>`` element string: the run, load and capacity
    reports all draw this way."""
    with plt.rc_context({"svg.fonttype": "path", "svg.hashsalt": prefix, "font.size": 8}):
        fig, ax = plt.subplots(figsize=size, dpi=96)
        try:
            draw(ax)
            return figure_svg(fig, prefix)
        finally:
            plt.close(fig)


def histogram_svg(values: Sequence[float], title: str, prefix: str) -> str:
    """A histogram of latencies (ms) with p50/p95/p99 marked, as an ``<svg>`` element string."""
    ordered = sorted(values)

    def draw(ax: Any) -> None:
        bins = min(30, max(5, len(ordered) // 2))
        ax.hist(ordered, bins=bins, color="#4c72b0", edgecolor="white", linewidth=0.5)
        for p, style in ((50, "-"), (95, "--"), (99, ":")):
            ax.axvline(percentile(ordered, p), color="#c44e52", linestyle=style, linewidth=1, label=f"p{p}")
        ax.set_title(title)
        ax.set_xlabel("ms")
        ax.set_ylabel("exchanges")
        ax.legend(loc="upper right", fontsize=7, frameon=False)

    return plot_svg(prefix, draw, (4.2, 2.4))


def figure_svg(fig: Any, prefix: str) -> str:
    """A finished matplotlib figure as an ``<svg>`` element string, its element IDs prefixed (call inside
    ``rc_context({"svg.fonttype": "path", "svg.hashsalt": prefix})``; the caller closes the figure)."""
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'\bid="', f'id="{prefix}-', svg)
    svg = re.sub(r"url\(#", f"url(#{prefix}-", svg)
    return re.sub(r'xlink:href="#', f'xlink:href="#{prefix}-', svg)
