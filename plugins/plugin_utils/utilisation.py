# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nodes' CPU, memory and GPU utilisation over a run, from Prometheus (the monitoring role's server).

Pure functions, controller side:

- :func:`queries` - the PromQL range queries for a window (one per panel, each series per ``node``; or one for
  every panel, whose answer :func:`split` parts);
- :func:`fetch` - runs them against a Prometheus HTTP API (a tunnel, or the private address) - the roles
  instead ask from the Prometheus node (``ansible.builtin.uri``) and hand over the raw answers;
- :func:`shape` - raw ``query_range`` answers -> per-node series clipped to the run's window and summary
  numbers (mean / max per node), what ``summary.json`` carries under ``utilisation``;
- :func:`draw` - the three panels onto matplotlib axes; a panel with no series (no GPU) says so instead of
  drawing zeros.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url

PANELS = (
    # key, title, PromQL (per node; {w} is the rate window), the unit
    ("cpu", "CPU", '100 * (1 - avg by (node) (rate(node_cpu_seconds_total{{job="node",mode="idle"}}[{w}])))', "%"),
    ("memory", "memory", '100 * (1 - avg by (node) (node_memory_MemAvailable_bytes{{job="node"}}'
                         ' / node_memory_MemTotal_bytes{{job="node"}}))', "%"),
    ("gpu", "GPU", 'avg by (node) (DCGM_FI_DEV_GPU_UTIL{{job="dcgm"}})', "%"),
)
MAX_POINTS = 240
COMBINED = "all"                # the key of the one query that asks every panel at once
PANEL_LABEL = "aiinfra_panel"   # the label that query gives each series: its panel's key


def window_step(start, end, scrape_interval=10.0):
    """(step, rate window) in seconds for a window: at most MAX_POINTS points, a rate over >= 2 scrapes."""
    duration = max(1.0, float(end) - float(start))
    step = max(1.0, math.ceil(duration / MAX_POINTS))
    rate_window = int(max(2.5 * float(scrape_interval), 2 * step))
    return step, rate_window


def queries(start, end, scrape_interval=10.0, combined=False):
    """{key: query_range parameters} for the window [start, end] (Unix times); ``combined``: one query for every
    panel, ``{"all": parameters}``, each series labelled with its panel (:func:`split` parts the answer)."""
    step, rate_window = window_step(start, end, scrape_interval)
    window = {"start": "%.3f" % float(start), "end": "%.3f" % float(end), "step": "%g" % step}
    if combined:
        # one request instead of one per panel (each a module run on the Prometheus node): the panels' series
        # differ by the added label, so "or" keeps them all
        parts = ['label_replace(%s, "%s", "%s", "", "")' % (promql.format(w="%ds" % rate_window), PANEL_LABEL, key)
                 for key, title, promql, unit in PANELS]
        return {COMBINED: dict({"query": " or ".join(parts)}, **window)}
    return dict((key, dict({"query": promql.format(w="%ds" % rate_window)}, **window))
                for key, title, promql, unit in PANELS)


def split(raw):
    """``{"all": the combined query's answer}`` -> ``{key: an answer of that panel's own}``; raw answers per panel
    pass as they are. An error answer (or none) stands for every panel."""
    if not isinstance(raw, dict) or COMBINED not in raw:
        return raw
    answer = raw[COMBINED]
    if not isinstance(answer, dict) or answer.get("status") != "success":
        return dict((key, answer) for key, title, promql, unit in PANELS)
    data = answer.get("data") or {}
    out = dict((key, dict(answer, data=dict(data, result=[]))) for key, title, promql, unit in PANELS)
    for series in data.get("result") or []:
        metric = dict(series.get("metric") or {})
        key = metric.pop(PANEL_LABEL, None)
        if key in out:
            out[key]["data"]["result"].append(dict(series, metric=metric))
    return out


def query_string(params):
    return urllib.parse.urlencode(params)


def duration_seconds(value):
    """A Prometheus duration ('5s', '1m', '1m30s') or a number -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value or "").strip()
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError("%r is not a Prometheus duration (e.g. 10s, 1m)" % (value,))
    return sum(float(a) * units[b] for a, b in parts)


def query_list(start, end, scrape_interval="10s", combined=False):
    """[{key, query_string}] for each panel (``combined``: one, key ``all``): what a task asks Prometheus'
    /api/v1/query_range."""
    interval = duration_seconds(scrape_interval)
    return [{"key": key, "query_string": query_string(params)}
            for key, params in queries(float(start), float(end), interval, combined).items()]


def fetch(base_url, start, end, scrape_interval=10.0, timeout=20, opener=None):
    """{key: the raw JSON answer of /api/v1/query_range} for each panel (an error answer is kept as it came)."""
    opener = opener or open_url
    out = {}
    for key, params in queries(start, end, scrape_interval, combined=True).items():
        url = base_url.rstrip("/") + "/api/v1/query_range?" + query_string(params)
        try:
            with opener(url, timeout=timeout) as resp:
                out[key] = json.load(resp)
        except (OSError, ValueError, UrlConnectionError) as exc:
            out[key] = {"status": "error", "error": str(exc)}
    return split(out)


def shape(raw, start, end, nodes=None):
    """Raw answers -> {window, panels: {key: {title, unit, status, nodes: {node: {t, v, mean, max}}}}}.

    Points outside [start, end] are dropped (the report is about the run's own window). ``nodes`` (names) orders
    the series and lists nodes that had none. A panel is ``ok``, ``empty`` (no series: e.g. no GPU) or ``error``.
    """
    start, end = float(start), float(end)
    raw = split(raw)
    panels = {}
    for key, title, promql, unit in PANELS:
        answer = (raw or {}).get(key)
        panel = {"title": title, "unit": unit, "nodes": {}}
        if not isinstance(answer, dict) or answer.get("status") != "success":
            panel["status"] = "error"
            panel["error"] = (answer or {}).get("error", "not queried") if isinstance(answer, dict) else "not queried"
            panels[key] = panel
            continue
        for series in (answer.get("data") or {}).get("result") or []:
            name = (series.get("metric") or {}).get("node", "?")
            points = [(float(t), float(v)) for t, v in series.get("values") or []
                      if start <= float(t) <= end and not math.isnan(float(v))]
            if not points:
                continue
            values = [v for t, v in points]
            panel["nodes"][name] = {"t": [round(t - start, 3) for t, v in points], "v": [round(v, 2) for v in values],
                                    "mean": round(sum(values) / len(values), 2), "max": round(max(values), 2)}
        order = list(nodes or []) + sorted(n for n in panel["nodes"] if n not in (nodes or []))
        panel["nodes"] = dict((n, panel["nodes"][n]) for n in order if n in panel["nodes"])
        panel["missing"] = [n for n in (nodes or []) if n not in panel["nodes"]]
        panel["status"] = "ok" if panel["nodes"] else "empty"
        panels[key] = panel
    return {"window": [start, end], "panels": panels}


def summary_entries(shaped):
    """What summary.json carries per node: {node: {cpu_mean, cpu_max, memory_mean, ..., gpu: 'no GPU'}}."""
    out = {}
    for key, panel in shaped["panels"].items():
        for name, series in panel["nodes"].items():
            out.setdefault(name, {})["%s_mean" % key] = series["mean"]
            out[name]["%s_max" % key] = series["max"]
        for name in panel.get("missing", []):
            if key == "gpu" and panel["status"] != "error":
                out.setdefault(name, {})["gpu"] = "no GPU"
    return out


def summary_line(shaped):
    """One line for summary.txt: 'utilisation (mean over the run): demo-0 CPU 85% mem 40% no GPU; ...'."""
    entries = summary_entries(shaped)
    if not any(k.endswith("_mean") for entry in entries.values() for k in entry):
        errors = sorted(set(p.get("error", "") for p in shaped["panels"].values() if p["status"] == "error"))
        return "utilisation: not available (%s)" % ("; ".join(e for e in errors if e) or "no series in the run's window")
    parts = []
    for name, entry in entries.items():
        bits = []
        for key, label in (("cpu", "CPU"), ("memory", "mem"), ("gpu", "GPU")):
            if "%s_mean" % key in entry:
                bits.append("%s %.0f%%" % (label, entry["%s_mean" % key]))
        if entry.get("gpu") == "no GPU":
            bits.append("no GPU")
        parts.append("%s %s" % (name, " ".join(bits)))
    return "utilisation (mean over the run): " + "; ".join(parts)


def draw(axes, shaped):
    """Draw the CPU, memory and GPU panels onto three matplotlib axes (seconds since the run started)."""
    duration = shaped["window"][1] - shaped["window"][0]
    for ax, (key, title, promql, unit) in zip(axes, PANELS):
        panel = shaped["panels"][key]
        ax.set_title("%s utilisation" % title, fontsize=9)
        ax.set_xlim(0, max(duration, 1.0))
        ax.set_ylim(0, 105)
        ax.set_ylabel(unit, fontsize=8)
        ax.set_xlabel("seconds since the run started", fontsize=8)
        ax.grid(True, alpha=0.3)
        if panel["status"] != "ok":
            text = "no GPU" if key == "gpu" and panel["status"] == "empty" else (
                "no data" if panel["status"] == "empty" else "Prometheus: %s" % panel.get("error", "error"))
            ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="grey")
            ax.set_yticks([])
            continue
        for name, series in panel["nodes"].items():
            ax.plot(series["t"], series["v"], linewidth=1.2, marker=".", markersize=3,
                    label="%s (mean %.0f%s)" % (name, series["mean"], unit))
        ax.legend(loc="upper right", fontsize=7)
    return axes
