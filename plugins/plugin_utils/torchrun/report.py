# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report (controller side): the whole report of a run from plain data (:func:`build_report`: the summary
``summary.json`` holds, the text people read, and the warnings to show), made of ``summary.json``'s core from the
verdict, the nodes' last states and their fetched logs (:func:`summarize`), the text (:func:`summary_text`), the failed
play's message (:func:`failure_message`) and ``loss.png`` (:func:`plot_loss`). The action plugin
(plugins/action/torchrun_report.py) only reads its arguments and the files, writes and publishes the result."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import exit_code
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import utilisation as hardware
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.prices import cost
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.recovery import attempt_record, attempts_text, timeline
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import checkpoints as ckpt
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.log import NOISE_RE
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.publish import report_destination
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.verdict import NodeState


def verdict_of(watch, hosts):
    """The watch's verdict; a watch that did not end with one (the controller was stopped) is a failure."""
    verdict = (watch or {}).get("verdict")
    if verdict and verdict.get("done"):
        return verdict
    order = sorted(hosts, key=lambda h: hosts[h])
    return {"status": "failed", "reason": "node", "failed": order, "message": "the watch ended without a verdict",
            "phases": (verdict or {}).get("phases") or dict((h, "pending") for h in order)}


def build_report(run, hosts, watch=None, logs=None, log_paths=None, addresses=None, stops=None, unstopped=(),
                 outputs=None, utilisation=None, prices=None, attempts=(), max_recoveries=None, checkpoints=None,
                 report_uri="", plot_path=None, health=None):
    """A run's report: ``(summary, text, warnings)`` - what ``summary.json`` holds, the readable summary and the
    warnings to show. Plain data in, as the torchrun_report action's options give it (see its documentation):

    ``run``: run_id, job, started, ended (epoch seconds), rdzv_endpoint; ``hosts``: host -> node rank; ``watch``:
    torchrun_watch's result (``verdict``, ``nodes``: each node's last state); ``logs``: host -> LogState of its
    fetched log; ``log_paths``: host -> where its log is on the controller; ``addresses``, ``stops`` (each node's
    torchrun_job stop result), ``unstopped``, ``outputs`` (host -> directory), ``utilisation`` (Prometheus'
    answers), ``prices`` (host -> price and launch_time), ``attempts`` (the earlier attempts), ``max_recoveries``,
    ``checkpoints`` (uri and nodes), ``report_uri``; ``plot_path``: where to draw ``loss.png`` (None: no plot).
    ``health``: the health gate's record before the job (plugin_utils/health.py ``summary_entry``; None: no gate).
    ``None`` for ``utilisation``, ``prices`` or ``checkpoints``: that part of the report is left out.
    """
    hosts = dict((h, int(r)) for h, r in hosts.items())
    watched, logs, log_paths = (watch or {}).get("nodes") or {}, logs or {}, log_paths or {}
    addresses, stops = addresses or {}, stops or {}
    warnings = []
    nodes = [{"host": host, "node_rank": rank, "address": addresses.get(host),
              "nproc_per_node": (watched.get(host) or {}).get("nproc_per_node"), "state": watched.get(host) or {},
              "log_path": log_paths.get(host), "stopped": stops.get(host) or {}} for host, rank in hosts.items()]
    summary = summarize(run, nodes, verdict_of(watch, hosts), logs)
    if run.get("framework") not in (None, "", "pytorch"):  # a TensorFlow job through the torchrun role
        summary["framework"] = run["framework"]
    summary["unstopped_nodes"] = list(unstopped)
    summary["outputs"] = dict((h, d) for h, d in sorted((outputs or {}).items()) if d)
    shaped = None
    if utilisation is not None:  # the monitoring role's Prometheus, over the run's own window
        shaped = hardware.shape(utilisation, run["started"], run["ended"], sorted(hosts, key=hosts.get))
        summary["utilisation"] = dict(window=shaped["window"], nodes=hardware.summary_entries(shaped),
                                      line=hardware.summary_line(shaped), panels=shaped["panels"])
    if prices is not None:
        priced = [dict(name=h, instance_type=(p.get("price") or {}).get("instance_type", ""),
                       hourly_price=(p.get("price") or {}).get("hourly"), price=p.get("price") or {},
                       launch_time=p.get("launch_time")) for h, p in sorted(prices.items())]
        summary["cost"] = {"run": cost(priced, run["ended"], start=run["started"]),
                           "cluster": cost(priced, run["ended"])}
    # every attempt of the job (torchrun_max_recoveries), this one last, and the recoveries between them
    summary["attempts"] = list(attempts) + [attempt_record(summary, watch or {})]
    summary["recoveries"] = timeline(summary["attempts"])
    if checkpoints is not None:
        summary["checkpoints"] = ckpt.summarize(checkpoints.get("uri"), checkpoints.get("nodes"))
        for item in summary["checkpoints"]["corrupt"]:
            warnings.append("checkpoint %s on %s was skipped on restore: %s" % (
                item.get("key") or item.get("path"), item["host"], item.get("reason") or "it does not verify"))
    drawn = None
    if plot_path:
        drawn, why = plot_loss(summary, plot_path, shaped)
        if why and summary["status"] == "succeeded":
            warnings.append("no loss plot: %s" % why)
    summary["plot"] = drawn
    text = summary_text(summary, drawn)
    for line in attempts_text(summary["attempts"], summary["recoveries"], max_recoveries):
        text += "\n" + line
    if summary.get("utilisation"):
        text += "\n  " + summary["utilisation"]["line"]
    if summary.get("checkpoints"):
        text += "\n" + "\n".join(ckpt.lines(summary["checkpoints"]))
    if summary.get("cost"):
        text += "\n  cost of the run: %s; of the cluster so far: %s" % (
            summary["cost"]["run"]["text"], summary["cost"]["cluster"]["text"])
    if health:  # the health gate before the job (plugin_utils/health.py)
        summary["health"] = health
        text += "\n  " + health_line(health)
    report_uri = (report_uri or "").strip()
    if report_uri:  # the run directory outlives the controller (an AWX job's execution environment)
        summary["report_uri"] = report_destination(report_uri, run["run_id"])
        text += "\n  report: %s" % summary["report_uri"]
    return summary, text, warnings


def health_line(health):
    """The health gate's line of the readable summary: passed or not, each node's best pair, what was replaced."""
    nodes = health.get("nodes") or {}
    figures = ", ".join("%s %s" % (host, "%.3g GB/s" % node["best_pair_gbs"] if node.get("best_pair_gbs") is not None
                                   else node.get("status", "")) for host, node in sorted(nodes.items()))
    line = "health gate: %s (best pair per node: %s)" % ("passed" if health.get("passed") else "failed", figures)
    if health.get("replaced"):
        line += "; replaced before the job: %s" % ", ".join(health["replaced"])
    return line


def summarize(run, nodes, verdict, parsed):
    """The run's summary (what summary.json holds).

    ``run``: run_id, job, started, ended, rdzv_endpoint, nnodes; ``nodes``: list of dicts host,
    node_rank, address, nproc_per_node, state (the poller's last :class:`NodeState`, as a dict), stopped (the
    stop's result, if the job was stopped there); ``parsed``: host -> LogState of the fetched log (or None);
    ``verdict``: the watch's :class:`Verdict`, as a dict.
    """
    rows, world, all_steps = [], 0, {}
    for node in sorted(nodes, key=lambda n: n["node_rank"]):
        state = NodeState.from_dict(dict(node.get("state") or {}, host=node["host"], node_rank=node["node_rank"]))
        log = parsed.get(node["host"])
        snap = log.snapshot() if log is not None else state.log
        phase = (verdict.get("phases") or {}).get(node["host"]) or state.phase
        stopped = node.get("stopped") or {}
        if phase in ("running", "pending") and (stopped.get("action") == "stopped" or stopped.get("exit")):
            # still running at the verdict: then stopped because of another node, or it ended by itself before the
            # stop came (the stop found its exit record) - not "running" in a report of a job that ended
            state.exit = stopped.get("exit") or state.exit
            if stopped.get("action") == "stopped":
                phase = "stopped"
            else:
                state.active = False
                phase = state.phase
        if state.preempted and phase in ("lost", "failed"):
            phase = "preempted"     # its cloud took it back (a spot notice came first): not a broken node
        exit_info = state.exit or {}
        ended = exit_info.get("time")
        began = state.started_at
        world += int(node.get("nproc_per_node") or 0)
        rows.append({
            "host": node["host"],
            "node_rank": node["node_rank"],
            "address": node.get("address"),
            "nproc_per_node": node.get("nproc_per_node"),
            "phase": phase,
            "exit_code": exit_code(exit_info),
            "result": exit_info.get("result") or ("lost" if state.lost else None),
            "duration_s": round(float(ended) - float(began), 1) if ended and began else None,
            "ranks": snap.get("ranks") or [],
            "restarts": snap.get("restarts") or 0,
            "last_metrics": snap.get("last_metrics"),
            "log": node.get("log_path"),
            "log_tail": (snap.get("tail") or [])[-40:],
            "started_at": state.started_at,
            "preempted": state.preempted,
        })
        if log is not None and log.steps:
            for item in log.steps:
                all_steps.setdefault(item["step"], item)
    steps = [all_steps[k] for k in sorted(all_steps)]
    codes = [r["exit_code"] for r in rows]
    first_bad = verdict.get("failed") or []
    aggregate = 0
    if verdict.get("status") != "succeeded":
        primary = [r for r in rows if first_bad and r["host"] == first_bad[0]]
        aggregate = next((c for c in [p["exit_code"] for p in primary] + codes if c), None) or 1
    metrics = {"steps_logged": len(steps)}
    if steps:
        metrics.update(first_step=steps[0]["step"], last_step=steps[-1]["step"], first_loss=steps[0]["loss"],
                       last_loss=steps[-1]["loss"], loss_went_down=steps[-1]["loss"] < steps[0]["loss"])
        rates = [s.get("samples_per_s") for s in steps[1:] if isinstance(s.get("samples_per_s"), (int, float))]
        if rates:
            metrics["samples_per_s"] = round(sorted(rates)[len(rates) // 2], 1)
    for row in rows:
        log = parsed.get(row["host"])
        if log is not None and log.done:
            for key in ("eval_acc", "resumed_from", "already_complete", "samples", "seconds", "merged"):
                if key in log.done:
                    metrics[key] = log.done[key]
            if not steps and isinstance(log.done.get("samples_per_s"), (int, float)):
                # a job without training steps (batch prediction): its own throughput over every rank
                metrics["samples_per_s"] = log.done["samples_per_s"]
        if log is not None and log.resume and "resumed_from_step" not in metrics:
            metrics["resumed_from_step"] = log.resume.get("step")
    world_seen = max([len(r["ranks"]) for r in rows] + [0])
    ranks_seen = sorted(set(k for r in rows for k in r["ranks"]))
    started, ended = run.get("started"), run.get("ended")
    return {
        "run_id": run["run_id"],
        "job": run.get("job"),
        "status": verdict.get("status"),
        "reason": verdict.get("reason"),
        "message": verdict.get("message"),
        "failed_nodes": first_bad,
        "preempted_nodes": verdict.get("preempted") or [],
        "exit_code": aggregate,
        "nnodes": len(rows),
        "world_size": world,
        "ranks_reported": ranks_seen,
        "ranks_per_node_max": world_seen,
        "rdzv_endpoint": run.get("rdzv_endpoint"),
        "started": started,
        "ended": ended,
        "duration_s": round(ended - started, 1) if started and ended else None,
        "metrics": metrics,
        "nodes": rows,
        "steps": [{"step": s["step"], "loss": s["loss"], "samples_per_s": s.get("samples_per_s")} for s in steps],
    }


def summary_text(summary, plot_path=None):
    """The report people read at the end of the play."""
    took = " in %ss" % summary["duration_s"] if summary.get("duration_s") else ""
    what = "TensorFlow" if summary.get("framework") == "tensorflow" else "torchrun"
    lines = ["%s run %s (job %s): %s%s"
             % (what, summary["run_id"], summary.get("job") or "-", summary["status"].upper(), took)]
    lines.append("  %d nodes, world size %d, ranks reported: %d/%d, aggregate exit code %s" % (
        summary["nnodes"], summary["world_size"], len(summary["ranks_reported"]), summary["world_size"],
        summary["exit_code"]))
    if summary.get("message") and summary["status"] != "succeeded":
        lines.append("  cause: %s" % summary["message"])
    lines.append("  %-4s %-24s %-16s %-10s %-5s %-9s %s" % ("rank", "node", "address", "phase", "exit",
                                                            "time", "last metrics"))
    for row in summary["nodes"]:
        metrics = row.get("last_metrics") or {}
        shown = ", ".join("%s=%s" % (k, metrics[k]) for k in metrics if k not in ("event", "time", "world_size"))
        lines.append("  %-4s %-24s %-16s %-10s %-5s %-9s %s" % (
            row["node_rank"], row["host"], row.get("address") or "-", row["phase"],
            "-" if row["exit_code"] is None else row["exit_code"],
            "-" if row["duration_s"] is None else "%ss" % row["duration_s"], shown[:80]))
    restarted = ["%s x%d" % (r["host"], r["restarts"]) for r in summary["nodes"] if r.get("restarts")]
    if restarted:
        lines.append("  worker group restarted (torchrun_max_restarts): %s" % ", ".join(restarted))
    metrics = summary.get("metrics") or {}
    if metrics.get("steps_logged"):
        lines.append("  loss %s at step %s -> %s at step %s (%s)%s%s" % (
            metrics["first_loss"], metrics["first_step"], metrics["last_loss"], metrics["last_step"],
            "went down" if metrics["loss_went_down"] else "did NOT go down",
            ", median %s samples/s" % metrics["samples_per_s"] if metrics.get("samples_per_s") else "",
            ", eval accuracy %s" % metrics["eval_acc"] if "eval_acc" in metrics else ""))
    if not metrics.get("steps_logged") and metrics.get("samples") is not None:
        lines.append("  %s samples in %ss over %d ranks: %s samples/s%s" % (
            metrics["samples"], metrics.get("seconds", "?"), summary["world_size"], metrics.get("samples_per_s", "?"),
            "; merged into %s" % metrics["merged"] if metrics.get("merged") else ""))
    if summary.get("outputs"):
        lines.append("  outputs: %s" % ", ".join("%s -> %s" % (h, d) for h, d in sorted(summary["outputs"].items())))
    if metrics.get("resumed_from_step") is not None:
        lines.append("  resumed from the checkpoint of step %s" % metrics["resumed_from_step"])
    if plot_path:
        lines.append("  loss plot: %s" % plot_path)
    return "\n".join(lines)


def failure_message(summary, unstopped=()):
    """One message for the failed play: what failed, where, and the tail of that node's log."""
    msg = ["torchrun run %s failed: %s" % (summary["run_id"], summary.get("message") or "see the summary")]
    for host in (summary.get("failed_nodes") or [])[:1]:
        row = next((r for r in summary["nodes"] if r["host"] == host), None)
        tail = [line for line in (row or {}).get("log_tail") or [] if not NOISE_RE.match(line)]
        if tail:
            msg.append("last lines of %s's log (%s):" % (host, row.get("log") or "not fetched"))
            msg.extend("  " + line for line in tail[-12:])
    if unstopped:
        msg.append("Stopped the job on every node but %s, which could not be reached or stopped (a unit left there "
                   "ends by itself at torchrun_timeout)." % ", ".join(unstopped))
    else:
        msg.append("Stopped the job on every node.")
    msg.append("Logs and summary.json are in the run directory; re-running the playbook resumes from the last "
               "checkpoint.")
    return "\n".join(msg)


def plot_loss(summary, path, utilisation=None):
    """A PNG of loss per step (and eval accuracy where the job logged it), and with ``utilisation`` (shaped by
    plugin_utils/utilisation.py) the nodes' CPU, memory and GPU panels under it. Returns the path, or a reason."""
    steps = summary.get("steps") or []
    if not steps:
        return None, "the job logged no step/loss lines"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "matplotlib is not installed on the controller (pip install matplotlib)"
    if utilisation:
        fig, axes = plt.subplots(4, 1, figsize=(7, 11), dpi=110, gridspec_kw={"height_ratios": [4, 2.5, 2.5, 2.5]})
        ax = axes[0]
        from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.utilisation import draw
        draw(axes[1:], utilisation)
    else:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot([s["step"] for s in steps], [s["loss"] for s in steps], marker=".", linewidth=1.2, label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (mean over ranks)")
    ax.grid(True, alpha=0.3)
    ax.set_title("%s: %s, %d nodes, world size %d" % (summary["run_id"], summary["status"], summary["nnodes"],
                                                      summary["world_size"]), fontsize=9)
    resumed = (summary.get("metrics") or {}).get("resumed_from_step")
    if resumed:
        ax.axvline(resumed, color="grey", linestyle="--", linewidth=1)
        ax.annotate("resumed", (resumed, ax.get_ylim()[1]), fontsize=8, va="top", ha="left")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path, None
