# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health gate's decisions (controller side): which pairs of nodes measure each other in which round
(:func:`pair_schedule`), the expectations of an instance type (:func:`expectations`, ``data/health.yml``), and from
every node's results which nodes fail and why (:func:`verdict`), with the report people read (:func:`report_text`).

A collective over all nodes runs at the pace of its slowest link, so it cannot name the node behind it; pairs can.
Each node is measured against others in rounds of pairs that do not overlap; a node's figure is its *best* pair (the
pair that ran fastest): a node whose pairs are all slow is the slow one, while its partners each still have a fast
pair with someone else. The best pair is compared with the instance type's figure where ``data/health.yml`` has one,
else with the cluster's median of the nodes' figures (under ``relative_fail_below`` x the median fails)."""

from __future__ import annotations

import os

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import datafile

HEALTH_DATA = os.path.join(datafile.DATA_DIR, "health.yml")


class HealthError(Exception):
    pass


def _check_data(data, path):
    types = data.get("instance_types")
    if not isinstance(types, dict):
        raise HealthError("%s: instance_types must be a mapping" % path)
    for name, entry in types.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("gpus"), int):
            raise HealthError("%s: %s needs gpus (an integer)" % (path, name))
    for key in ("node_fail_below", "pair_fail_below", "relative_fail_below"):
        if not 0 < float(data.get(key, 0)) < 1:
            raise HealthError("%s: %s must be between 0 and 1" % (path, key))


def load(path=None):
    return datafile.load(path or HEALTH_DATA, "health", HealthError, _check_data)


def expectations(instance_type, data=None):
    """What ``instance_type`` must show: ``{gpus, gpu_model, node_min_gbs, pair_min_gbs, known}`` (the minimums are
    the data's figure x its fail_below; None where the data has no figure). An unknown type: known False, nothing
    expected (the nodes are compared with each other)."""
    data = data or load()
    entry = (data["instance_types"] or {}).get(instance_type or "")
    if not entry:
        return {"known": False, "gpus": 0, "gpu_model": "", "node_min_gbs": None, "pair_min_gbs": None}

    def minimum(key, fraction):
        return round(float(entry[key]) * float(data[fraction]), 3) if entry.get(key) else None
    return {"known": True, "gpus": int(entry["gpus"]), "gpu_model": entry.get("gpu_model") or "",
            "node_min_gbs": minimum("node_busbw_gbs", "node_fail_below"),
            "pair_min_gbs": minimum("pair_busbw_gbs", "pair_fail_below")}


def pair_schedule(hosts, max_rounds=None):
    """Rounds of pairs in which no node is in two pairs (the circle method of a round-robin tournament): with ``n``
    nodes, ``n - 1`` rounds (``n`` when ``n`` is odd, each node sitting one out) cover every pair once. With
    ``max_rounds`` only the first rounds are kept (each node then meets ``max_rounds`` others at most): for big
    clusters, where every pair would take too long."""
    hosts = list(hosts)
    if len(hosts) < 2:
        return []
    ring = hosts + ([None] if len(hosts) % 2 else [])
    size = len(ring)
    rounds = []
    for dummy in range(size - 1):
        pairs = [[ring[i], ring[size - 1 - i]] for i in range(size // 2)]
        rounds.append([sorted(p, key=hosts.index) for p in pairs if None not in p])
        ring = [ring[0], ring[-1]] + ring[1:-1]
    if max_rounds:
        rounds = rounds[:int(max_rounds)]
    return rounds


def _median(values):
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0


def pair_figures(results):
    """The pairs measured, from every node's side (``results``: host -> the node_health pairs result): one row a pair,
    ``{pair, round, busbw_gbs, error}``; the two sides agree on a figure, and where they differ the lower one counts
    (an error on either side: the pair failed)."""
    pairs = {}
    for host, result in results.items():
        for row in (result or {}).get("pairs") or []:
            key = (row.get("round"), tuple(row.get("pair") or (host, row.get("peer"))))
            seen = pairs.setdefault(key, {"round": key[0], "pair": list(key[1]), "busbw_gbs": None, "error": ""})
            if row.get("error") or row.get("busbw_gbs") is None:
                seen["error"] = seen["error"] or "%s: %s" % (host, row.get("error") or "no figure")
                continue
            figure = float(row["busbw_gbs"])
            seen["busbw_gbs"] = figure if seen["busbw_gbs"] is None else min(seen["busbw_gbs"], figure)
    return [pairs[k] for k in sorted(pairs, key=lambda k: (k[0] if k[0] is not None else -1, k[1]))]


def _fmt(value):
    if value is None:
        return "-"
    if value < 10:
        return "%.3g" % value
    return "%.1f" % value if value < 100 else "%.0f" % value


def verdict(nodes, pairs=None, data=None, relative=None):
    """Which nodes fail the health gate, and why.

    ``nodes``: host -> ``{"instance_type", "node": node_health's node result (checks, local)}``; ``pairs``: host ->
    node_health's pairs result (None or empty: no pair measurement). Returns ``{"passed", "failed": [hosts],
    "nodes": {host: {status, reasons, checks, busbw_gbs, pairs: {peer: GB/s}, best_pair_gbs, best_peer,
    thresholds}}, "pairs": [rows], "median_pair_gbs", "median_node_gbs", "notes"}``."""
    data = data or load()
    relative = float(relative if relative is not None else data["relative_fail_below"])
    hosts = list(nodes)
    out = {}
    for host in hosts:
        entry = nodes[host] or {}
        result = entry.get("node") or {}
        checks = list(result.get("checks") or [])
        local = (result.get("local") or {}).get("busbw_gbs")
        out[host] = {"status": "passed", "reasons": [], "checks": checks, "instance_type": entry.get("instance_type")
                     or "", "busbw_gbs": local, "pairs": {}, "best_pair_gbs": None, "best_peer": None,
                     "expect": expectations(entry.get("instance_type"), data)}
        if result.get("unreachable"):
            out[host]["reasons"].append("does not answer over SSH (%s)" % " ".join(str(result.get("msg", "")).split()))
        elif result.get("failed") and not checks:
            out[host]["reasons"].append("the node check failed: %s" % " ".join(str(result.get("msg", "")).split()))
        for item in checks:
            if item.get("status") == "failed":
                out[host]["reasons"].append("%s: %s" % (item["name"], item.get("detail", "")))
    notes = []
    # the node's own all-reduce: the instance type's minimum, else relative to the other GPU nodes' median
    locals_ = [v["busbw_gbs"] for v in out.values() if v["busbw_gbs"] is not None]
    median_node = _median(locals_)
    for host, node in out.items():
        busbw, minimum = node["busbw_gbs"], node["expect"]["node_min_gbs"]
        if busbw is None:
            continue
        if minimum is not None and busbw < minimum:
            node["reasons"].append("all-reduce across its GPUs %s GB/s, under %s GB/s (%s)" % (
                _fmt(busbw), _fmt(minimum), node["instance_type"]))
        elif minimum is None and len(locals_) > 1 and busbw < relative * median_node:
            node["reasons"].append("all-reduce across its GPUs %s GB/s, under %d%% of the cluster's median %s GB/s" % (
                _fmt(busbw), round(relative * 100), _fmt(median_node)))
    # between nodes: each node's best pair
    rows = pair_figures(pairs or {})
    for row in rows:
        first, second = row["pair"]
        figure = row["busbw_gbs"] if not row["error"] else 0.0
        for me, peer in ((first, second), (second, first)):
            if me in out:
                out[me]["pairs"][peer] = figure
    for node in out.values():
        if node["pairs"]:
            node["best_peer"] = max(node["pairs"], key=lambda p: node["pairs"][p])
            node["best_pair_gbs"] = node["pairs"][node["best_peer"]]
    bests = [v["best_pair_gbs"] for v in out.values() if v["best_pair_gbs"] is not None]
    median_pair = _median(bests)
    measured = [h for h in hosts if out[h]["pairs"]]
    if rows and len(measured) == 2:
        notes.append("2 nodes: one pair, so a slow link cannot be told from a slow node; both are judged by the "
                     "instance type's figure only")
    for host in measured:
        node = out[host]
        best, minimum = node["best_pair_gbs"], node["expect"]["pair_min_gbs"]
        pairs_text = ", ".join("%s %s" % (peer, _fmt(node["pairs"][peer])) for peer in sorted(node["pairs"]))
        if best <= 0:
            node["reasons"].append("no pair with another node completed (%s)" % "; ".join(
                r["error"] for r in rows if host in r["pair"] and r["error"]))
        elif minimum is not None and best < minimum:
            node["reasons"].append("between nodes: its best pair %s GB/s, under %s GB/s (%s); pairs: %s" % (
                _fmt(best), _fmt(minimum), node["instance_type"], pairs_text))
        elif minimum is None and len(measured) > 2 and best < relative * median_pair:
            node["reasons"].append("between nodes: every pair slow - best %s GB/s, under %d%% of the cluster's "
                                   "median %s GB/s; pairs: %s"
                                   % (_fmt(best), round(relative * 100), _fmt(median_pair), pairs_text))
    failed = [h for h in hosts if out[h]["reasons"]]
    for host in failed:
        out[host]["status"] = "failed"
    return {"passed": not failed, "failed": failed, "nodes": out, "pairs": rows, "median_pair_gbs": median_pair,
            "median_node_gbs": median_node, "relative_fail_below": relative, "notes": notes}


def node_line(host, node):
    """One node's line of the report: its status, its figures, and its reasons when it failed."""
    statuses = {}
    for item in node["checks"]:
        statuses.setdefault(item["status"], []).append(item["name"])
    parts = []
    if node["busbw_gbs"] is not None:
        parts.append("all-reduce in node %s GB/s" % _fmt(node["busbw_gbs"]))
    if node["pairs"]:
        parts.append("best pair %s GB/s (pairs: %s)" % (_fmt(node["best_pair_gbs"]), ", ".join(
            "%s %s" % (peer, _fmt(node["pairs"][peer])) for peer in sorted(node["pairs"]))))
    for status in ("passed", "warning", "not applicable"):
        if statuses.get(status):
            parts.append("%s: %s" % (status, ", ".join(statuses[status])))
    line = "  %s  %-6s  %s" % (host, node["status"].upper(), "; ".join(parts))
    for reason in node["reasons"]:
        line += "\n      %s" % reason
    return line


def report_text(result, cluster="", method=""):
    """The health report: one line a node with its figures, the failed nodes with their reasons."""
    nodes = result["nodes"]
    outcome = "passed" if result["passed"] else "FAILED: " + ", ".join(result["failed"])
    head = "health of %s: %d node(s), %s" % (cluster or "the cluster", len(nodes), outcome)
    if result["pairs"]:
        head += "; %d pair(s)%s, median best pair %s GB/s" % (
            len(result["pairs"]), " (%s)" % method if method else "", _fmt(result["median_pair_gbs"]))
    lines = [head] + [node_line(h, nodes[h]) for h in nodes]
    lines += ["  note: %s" % n for n in result["notes"]]
    return "\n".join(lines)


def summary_entry(result):
    """What the run's summary.json keeps of the gate (its ``health`` key): per node, status, reasons and figures."""
    return {"passed": result["passed"], "failed": list(result["failed"]),
            "median_pair_gbs": result["median_pair_gbs"], "median_node_gbs": result["median_node_gbs"],
            "nodes": dict((h, {"status": n["status"], "reasons": n["reasons"], "busbw_gbs": n["busbw_gbs"],
                               "best_pair_gbs": n["best_pair_gbs"], "pairs": n["pairs"],
                               "checks": dict((c["name"], c["status"]) for c in n["checks"])})
                          for h, n in result["nodes"].items())}
