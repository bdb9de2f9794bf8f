# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recovery from lost nodes (controller side): which nodes are lost (:func:`lost_nodes`), each attempt of a job
that was run again on replaced nodes (:func:`attempt_record`), which ranks' replacements fall back from spot to
on-demand (:func:`spot_fallback`), the recovery timeline (:func:`timeline`) and the lines the report prints
(:func:`attempts_text`)."""

from __future__ import annotations


def _rank(host):
    try:
        return int(host.get("gpu_cluster_rank"))
    except (TypeError, ValueError):
        return None


def lost_nodes(hosts, cloud_nodes=None):
    """The lost nodes among ``hosts``, in rank order: ``[{host, rank, node_id, reason}]``.

    ``hosts``: each node's hostvars (``inventory_hostname``, ``gpu_cluster_rank``, ``gpu_cluster_node_id`` and
    ``_gpu_cluster_ping``, the result of a short ping, absent or skipped when it was not asked); ``cloud_nodes``: the
    cluster's nodes as the cloud lists them (the instance_info module's ``nodes``), or None when there is no cloud to
    ask (bring-your-own nodes). A node is lost when the cloud no longer has it (gone, or another id under its rank),
    when the cloud says it is not running, or when it does not answer over SSH.
    """
    by_rank = None
    if cloud_nodes is not None:
        by_rank = dict((int(n.get("rank")), n) for n in cloud_nodes if n.get("rank") is not None)
    lost = []
    for host in hosts:
        name = host.get("inventory_hostname")
        rank = _rank(host)
        node_id = host.get("gpu_cluster_node_id")
        reason = None
        if by_rank is not None and rank is not None:
            node = by_rank.get(rank)
            if node is None:
                reason = "gone: the cloud has no node of rank %d any more" % rank
            elif node_id and str(node.get("id")) != str(node_id):
                reason = "gone: rank %d is now node %s, not %s" % (rank, node.get("id"), node_id)
            elif node.get("state") != "running":
                reason = "%s in the cloud" % (node.get("state") or "not running")
        if reason is None:
            ping = host.get("_gpu_cluster_ping") or {}
            if ping.get("unreachable") or (ping.get("failed") and not ping.get("skipped")):
                reason = "does not answer over SSH: %s" % " ".join(str(ping.get("msg") or "unreachable").split())[:200]
        if reason:
            lost.append({"host": name, "rank": rank, "node_id": node_id, "reason": reason})
    return sorted(lost, key=lambda n: (n["rank"] is None, n["rank"] or 0, n["host"]))


def attempt_record(summary, watch=None, lost=None, recovery=None):
    """One attempt of a job for the report: its run, its outcome, the nodes it lost and, when the nodes were replaced
    and the job launched again, the times of that recovery (``recovery``: detected, replaced, configured)."""
    summary = summary or {}
    times = (watch or {}).get("times") or {}
    record = {
        "run_id": summary.get("run_id"),
        "status": summary.get("status"),
        "reason": summary.get("reason"),
        "message": summary.get("message") if summary.get("status") != "succeeded" else None,
        "started": summary.get("started"),
        "ended": summary.get("ended"),
        "running_at": times.get("running"),
        "first_step_at": times.get("first_step"),
        "last_step": (summary.get("metrics") or {}).get("last_step"),
        "resumed_from_step": (summary.get("metrics") or {}).get("resumed_from_step"),
        "lost": list(lost or []),
    }
    if summary.get("preempted_nodes"):
        # the lost nodes that had a spot notice: what spot_fallback counts
        record["preempted"] = list(summary["preempted_nodes"])
    if recovery:
        record["recovery"] = dict(recovery)
    return record


def preemptions_by_rank(attempts):
    """rank -> how many of its nodes were preempted (lost after a spot notice) over ``attempts``."""
    counts = {}
    for att in attempts or []:
        preempted = set(att.get("preempted") or [])
        for node in att.get("lost") or []:
            if node.get("host") in preempted and node.get("rank") is not None:
                rank = int(node["rank"])
                counts[rank] = counts.get(rank, 0) + 1
    return counts


def spot_fallback(attempts, lost, after):
    """The lost nodes whose replacement is launched on-demand instead of spot: ``[{host, rank, preemptions}]``.

    ``attempts``: the job's attempts so far (:func:`attempt_record`, the one that lost ``lost`` included), each with
    its ``lost`` nodes and its ``preempted`` hosts; ``lost``: the nodes about to be replaced (:func:`lost_nodes`);
    ``after``: ``gpu_cluster_spot_fallback_after`` - a rank that has lost this many nodes to preemption gets an
    on-demand node (and keeps getting one: the count does not go down). ``0`` - never.
    """
    after = int(after or 0)
    if after <= 0:
        return []
    counts = preemptions_by_rank(attempts)
    out = []
    for node in lost or []:
        if node.get("rank") is None:
            continue
        times = counts.get(int(node["rank"]), 0)
        if times >= after:
            out.append({"host": node.get("host"), "rank": int(node["rank"]), "preemptions": times})
    return out


def _secs(later, earlier):
    try:
        return round(float(later) - float(earlier), 1)
    except (TypeError, ValueError):
        return None


def timeline(attempts):
    """For each recovery (an attempt that lost nodes, followed by another): seconds from the loss being detected to
    the nodes replaced, configured, the job relaunched and running again (every node joined the new rendezvous), and
    to its first step."""
    out = []
    for before, after in zip(attempts, attempts[1:]):
        rec = before.get("recovery") or {}
        detected = rec.get("detected")
        out.append({
            "after_run": before.get("run_id"),
            "run_id": after.get("run_id"),
            "lost": [n.get("host") for n in before.get("lost") or []],
            "detected": detected,
            "replaced_s": _secs(rec.get("replaced"), detected),
            "configured_s": _secs(rec.get("configured"), detected),
            "relaunched_s": _secs(after.get("started"), detected),
            "running_again_s": _secs(after.get("running_at"), detected),
            "first_step_s": _secs(after.get("first_step_at"), detected),
            "resumed_from_step": after.get("resumed_from_step"),
            "on_demand": [n.get("host") for n in rec.get("on_demand") or []],
        })
    return out


def attempts_text(attempts, recoveries, max_recoveries=None):
    """The report's lines on attempts and recoveries (none when the job ran once)."""
    if len(attempts) < 2 and not (attempts and attempts[0].get("lost")):
        return []
    lines = ["  attempts: %d%s" % (len(attempts), " (torchrun_max_recoveries %s)" % max_recoveries
                                   if max_recoveries is not None else "")]
    for number, att in enumerate(attempts, 1):
        took = _secs(att.get("ended"), att.get("started"))
        lost = "; lost %s" % ", ".join("%s (rank %s: %s)" % (n.get("host"), n.get("rank"), n.get("reason"))
                                       for n in att["lost"]) if att.get("lost") else ""
        steps = ", last step %s" % att["last_step"] if att.get("last_step") is not None else ""
        after = " after %ss" % took if took is not None else ""
        status = (att.get("status") or "?").upper()
        lines.append("    %d. run %s: %s%s%s%s" % (number, att.get("run_id"), status, after, steps, lost))
    for number, rec in enumerate(recoveries, 1):
        parts = ["%s %ss" % (label, rec[key]) for label, key in (
            ("replaced", "replaced_s"), ("configured", "configured_s"), ("relaunched", "relaunched_s"),
            ("running again", "running_again_s"), ("first step", "first_step_s")) if rec.get(key) is not None]
        lines.append("  recovery %d (%s lost): from detection, %s%s%s" % (
            number, ", ".join(rec["lost"]) or "-", ", ".join(parts) or "no times",
            "; resumed from step %s" % rec["resumed_from_step"] if rec.get("resumed_from_step") is not None else "",
            "; replaced on-demand (spot fallback): %s" % ", ".join(rec["on_demand"]) if rec.get("on_demand") else ""))
    return lines
