"""Render a dashboard's panels to one PNG, from a running Prometheus.

Reads the panel queries straight from the Grafana dashboard JSON (so the picture
shows what operators see), substitutes the template variables, fetches each
target with Prometheus's ``query_range`` API and draws one matplotlib subplot per
time-series or stat panel (tables are left out)::

    python -m bench.dashboard_png --prometheus http://127.0.0.1:9090 \\
        --out docs/dashboard.png --minutes 10

``--dashboard`` picks another dashboard JSON; ``--var name=value`` sets a
template variable (default ``.*``, i.e. "All").
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["render", "main", "DEFAULT_DASHBOARD"]

DEFAULT_DASHBOARD = (Path(__file__).resolve().parent.parent
                     / "deploy" / "grafana" / "dashboards" / "pipeline-health.json")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_DRAWN = ("timeseries", "stat", "graph", "bargauge", "gauge")
#: Grafana unit ids -> axis labels.
_UNITS = {"s": "seconds", "reqps": "per second", "ops": "per second", "bytes": "bytes",
          "percentunit": "share", "short": ""}


def _expand(expr: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g is not None)
        return values.get(name, ".*")

    return _VARIABLE.sub(replace, expr)


def _panels(panels: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", ()))


def _query_range(url: str, expr: str, start: float, end: float, step: float) -> list[dict]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query_range?{params}", timeout=30) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as err:
        body = json.load(err)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr!r}: {body.get('error')}")
    return list(body["data"]["result"])


def _legend(fmt: str, labels: Mapping[str, str]) -> str:
    if fmt and fmt != "__auto":
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), fmt)
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    return ",".join(f"{k}={v}" for k, v in sorted(shown.items())) or labels.get("__name__", "value")


def render(
    prometheus: str,
    out: str | Path,
    *,
    minutes: float = 10,
    dashboard: str | Path = DEFAULT_DASHBOARD,
    variables: Mapping[str, str] | None = None,
    end: float | None = None,
    columns: int = 3,
) -> int:
    """Draw the dashboard's panels over the last ``minutes``; return how many were drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.dates import DateFormatter

    doc = json.loads(Path(dashboard).read_text(encoding="utf-8"))
    end = time.time() if end is None else end
    start = end - minutes * 60
    step = max(1.0, round(minutes * 60 / 240))  # ~240 points per line
    values = {"__rate_interval": f"{int(max(60, 4 * step))}s", "__interval": f"{int(step)}s",
              "__range": f"{int(minutes * 60)}s", **(variables or {})}
    panels = [p for p in _panels(doc.get("panels", ()))
              if p.get("type") in _DRAWN and p.get("targets")]
    if not panels:
        raise ValueError(f"{dashboard}: no time-series or stat panels to draw")
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.2 * rows), squeeze=False)
    prometheus = prometheus.rstrip("/")
    for ax, panel in zip(axes.flat, panels, strict=False):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        lines = 0
        for target in panel["targets"]:
            expr = _expand(target.get("expr", ""), values)
            if not expr:
                continue
            for series in _query_range(prometheus, expr, start, end, step):
                points = [(datetime.fromtimestamp(float(t), UTC), float(v))
                          for t, v in series["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if not points:
                    continue
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, linewidth=1.2,
                        label=_legend(target.get("legendFormat", ""), series["metric"])[:40])
                lines += 1
        ax.set_title(panel.get("title", ""), fontsize=10, loc="left")
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S" if minutes <= 15 else "%H:%M"))
        if _UNITS.get(unit, unit):
            ax.set_ylabel(_UNITS.get(unit, unit), fontsize=7)
        if lines and ax.get_ylim()[0] >= 0:  # like the dashboards' min 0: flat lines stay honest
            ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1e-9))
        if lines == 0:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes,
                    color="grey")
        elif lines <= 8:
            ax.legend(fontsize=6, loc="upper left")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    stamp = datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%d %H:%M UTC")
    fig.suptitle(f"{doc.get('title', 'dashboard')} - last {minutes:g} min to {stamp}", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return len(panels)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_png", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--out", required=True, help="PNG path to write")
    parser.add_argument("--minutes", type=float, default=10, help="time range ending now")
    parser.add_argument("--dashboard", default=str(DEFAULT_DASHBOARD), help="dashboard JSON")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="template variable value (default .*)")
    args = parser.parse_args(argv)
    variables = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--var {item!r}: expected NAME=VALUE")
        variables[name] = value
    try:
        count = render(args.prometheus, args.out, minutes=args.minutes,
                       dashboard=args.dashboard, variables=variables)
    except (OSError, RuntimeError, ValueError) as err:
        print(f"dashboard_png: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({count} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
