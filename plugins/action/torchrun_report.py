# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for aiinfra.gpu_cluster.torchrun_report (documented in plugins/modules/torchrun_report.py).

Runs on the controller only: reads the watchers' final states (``<run_dir>/.watch``) and the node logs
fetched into the run directory, writes ``summary.json``, ``summary.txt`` and ``loss.png``, shows the
summary, and fails with the cause when the job failed.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import (
    failure_message, parse_log, summarize, summary_text, watch_dir)

display = Display()

ARGUMENT_SPEC = dict(
    run_id=dict(type="str", required=True),
    job=dict(type="str", default=""),
    run_dir=dict(type="str", required=True),
    hosts=dict(type="dict", required=True),
    addresses=dict(type="dict", default={}),
    verdicts=dict(type="dict", default={}),
    started=dict(type="float", required=True),
    rdzv_endpoint=dict(type="str", default=""),
    plot=dict(type="bool", default=True),
    unstopped=dict(type="list", elements="str", default=[]),
    stops=dict(type="dict", default={}),
    show=dict(type="bool", default=True),
)


def pick_verdict(verdicts, hosts, states):
    """The watchers agree on the outcome; take the first non-lost node's, a failure over a success."""
    order = sorted(hosts, key=lambda h: hosts[h])
    candidates = [verdicts[h] for h in order if verdicts.get(h) and not (states.get(h) or {}).get("lost")]
    candidates += [verdicts[h] for h in order if verdicts.get(h)]
    for verdict in candidates:
        if verdict.get("status") == "failed":
            return verdict
    if candidates:
        return candidates[0]
    return {"status": "failed", "reason": "node", "failed": order, "message": "no node reported on the job",
            "phases": dict((h, "lost") for h in order)}


def plot_loss(summary, path):
    """A PNG of loss per step (and eval accuracy where the job logged it). Returns the path, or a reason."""
    steps = summary.get("steps") or []
    if not steps:
        return None, "the job logged no step/loss lines"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "matplotlib is not installed on the controller (pip install matplotlib)"
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


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        run_dir = os.path.abspath(args["run_dir"])
        hosts = dict((k, int(v)) for k, v in args["hosts"].items())
        states, parsed, nodes = {}, {}, []
        for host in hosts:
            try:
                with open(os.path.join(watch_dir(run_dir, args["started"] or 0), "%s.json" % host)) as handle:
                    states[host] = json.load(handle)
            except (IOError, OSError, ValueError):
                states[host] = {}
            log_path = os.path.join(run_dir, host, "torchrun.log")
            if os.path.exists(log_path):
                with open(log_path, errors="replace") as handle:
                    parsed[host] = parse_log(handle.read())
            else:
                log_path = None
                tail = ((states[host].get("log") or {}).get("tail")) or []
                if tail:  # a node that stopped answering: keep what the watcher saw of its log
                    partial = os.path.join(run_dir, host, "torchrun.partial.log")
                    os.makedirs(os.path.dirname(partial), exist_ok=True)
                    with open(partial, "w") as handle:
                        handle.write("\n".join(tail) + "\n")
                    log_path = partial
            nodes.append({"host": host, "node_rank": hosts[host], "address": args["addresses"].get(host),
                          "nproc_per_node": states[host].get("nproc_per_node"), "state": states[host],
                          "log_path": log_path, "stopped": args["stops"].get(host) or {}})
        verdict = pick_verdict(args["verdicts"], hosts, states)
        run = {"run_id": args["run_id"], "job": args["job"], "started": args["started"], "ended": time.time(),
               "rdzv_endpoint": args["rdzv_endpoint"]}
        summary = summarize(run, nodes, verdict, parsed)
        summary["unstopped_nodes"] = args["unstopped"]
        plot_path = None
        if args["plot"]:
            plot_path, why = plot_loss(summary, os.path.join(run_dir, "loss.png"))
            if why and summary["status"] == "succeeded":
                display.warning("no loss plot: %s" % why)
        summary["plot"] = plot_path
        text = summary_text(summary, plot_path)
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "summary.json"), "w") as handle:
            json.dump(summary, handle, indent=2, sort_keys=False)
        with open(os.path.join(run_dir, "summary.txt"), "w") as handle:
            handle.write(text + "\n")
        if args["show"]:
            display.display(text)
        result.update(changed=False, summary=summary, summary_text=text, run_dir=run_dir,
                      summary_path=os.path.join(run_dir, "summary.json"))
        if summary["status"] != "succeeded":
            result.update(failed=True, msg=failure_message(summary, args["unstopped"]))
        else:
            result["msg"] = text
        return result
