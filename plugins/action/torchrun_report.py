# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for aiinfra.gpu_cluster.torchrun_report (documented in plugins/modules/torchrun_report.py).

Runs on the controller only: takes the watch's verdict and every node's last state, and the node logs
fetched into the run directory, writes ``summary.json``, ``summary.txt`` and ``loss.png``, shows the
summary, and fails with the cause when the job failed.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import utilisation as hardware
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.argspec import argument_spec_for
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.prices import cost
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.recovery import attempt_record, attempts_text, timeline
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import checkpoints as ckpt
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.log import parse_log
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.publish import publish_run_dir, report_destination
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.report import (
    failure_message, plot_loss, summarize, summary_text)

display = Display()

def verdict_of(watch, hosts):
    """The watch's verdict; a watch that did not end with one (the controller was stopped) is a failure."""
    verdict = (watch or {}).get("verdict")
    if verdict and verdict.get("done"):
        return verdict
    order = sorted(hosts, key=lambda h: hosts[h])
    return {"status": "failed", "reason": "node", "failed": order, "message": "the watch ended without a verdict",
            "phases": (verdict or {}).get("phases") or dict((h, "pending") for h in order)}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        # the options plugins/modules/torchrun_report.py documents (the object store's connection is a secret)
        dummy, args = self.validate_argument_spec(
            argument_spec=argument_spec_for("torchrun_report", no_log=("storage_options",)))
        run_dir = os.path.abspath(args["run_dir"])
        hosts = dict((k, int(v)) for k, v in args["hosts"].items())
        watched = (args["watch"] or {}).get("nodes") or {}
        parsed, nodes = {}, []
        for host in hosts:
            state = watched.get(host) or {}
            log_path = os.path.join(run_dir, host, "torchrun.log")
            if os.path.exists(log_path):
                with open(log_path, errors="replace") as handle:
                    parsed[host] = parse_log(handle.read())
            else:
                log_path = None
                tail = (state.get("log") or {}).get("tail") or []
                if tail:  # a node that stopped answering: keep what the poller saw of its log
                    partial = os.path.join(run_dir, host, "torchrun.partial.log")
                    os.makedirs(os.path.dirname(partial), exist_ok=True)
                    with open(partial, "w") as handle:
                        handle.write("\n".join(tail) + "\n")
                    log_path = partial
            nodes.append({"host": host, "node_rank": hosts[host], "address": args["addresses"].get(host),
                          "nproc_per_node": state.get("nproc_per_node"), "state": state,
                          "log_path": log_path, "stopped": args["stops"].get(host) or {}})
        verdict = verdict_of(args["watch"], hosts)
        run = {"run_id": args["run_id"], "job": args["job"], "started": args["started"], "ended": time.time(),
               "rdzv_endpoint": args["rdzv_endpoint"]}
        summary = summarize(run, nodes, verdict, parsed)
        summary["unstopped_nodes"] = args["unstopped"]
        summary["outputs"] = dict((h, d) for h, d in sorted(args["outputs"].items()) if d)
        shaped = None
        if args["utilisation"] is not None:  # the monitoring role's Prometheus, over the run's own window
            shaped = hardware.shape(args["utilisation"], run["started"], run["ended"], sorted(hosts, key=hosts.get))
            summary["utilisation"] = dict(window=shaped["window"], nodes=hardware.summary_entries(shaped),
                                          line=hardware.summary_line(shaped), panels=shaped["panels"])
        if args["prices"] is not None:
            priced = [dict(name=h, instance_type=(p.get("price") or {}).get("instance_type", ""),
                           hourly_price=(p.get("price") or {}).get("hourly"), price=p.get("price") or {},
                           launch_time=p.get("launch_time")) for h, p in sorted(args["prices"].items())]
            summary["cost"] = {"run": cost(priced, run["ended"], start=run["started"]),
                               "cluster": cost(priced, run["ended"])}
        # every attempt of the job (torchrun_max_recoveries), this one last, and the recoveries between them
        summary["attempts"] = list(args["attempts"]) + [attempt_record(summary, args["watch"])]
        summary["recoveries"] = timeline(summary["attempts"])
        if args["checkpoints"] is not None:
            summary["checkpoints"] = ckpt.summarize(args["checkpoints"].get("uri"), args["checkpoints"].get("nodes"))
            for item in summary["checkpoints"]["corrupt"]:
                display.warning("checkpoint %s on %s was skipped on restore: %s" % (
                    item.get("key") or item.get("path"), item["host"], item.get("reason") or "it does not verify"))
        plot_path = None
        if args["plot"]:
            plot_path, why = plot_loss(summary, os.path.join(run_dir, "loss.png"), shaped)
            if why and summary["status"] == "succeeded":
                display.warning("no loss plot: %s" % why)
        summary["plot"] = plot_path
        text = summary_text(summary, plot_path)
        for line in attempts_text(summary["attempts"], summary["recoveries"], args["max_recoveries"]):
            text += "\n" + line
        if summary.get("utilisation"):
            text += "\n  " + summary["utilisation"]["line"]
        if summary.get("checkpoints"):
            text += "\n" + "\n".join(ckpt.lines(summary["checkpoints"]))
        if summary.get("cost"):
            text += "\n  cost of the run: %s; of the cluster so far: %s" % (
                summary["cost"]["run"]["text"], summary["cost"]["cluster"]["text"])
        report_uri = (args["report_uri"] or "").strip()
        if report_uri:  # the run directory outlives the controller (an AWX job's execution environment)
            summary["report_uri"] = report_destination(report_uri, args["run_id"])
            text += "\n  report: %s" % summary["report_uri"]
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "summary.json"), "w") as handle:
            json.dump(summary, handle, indent=2, sort_keys=False)
        with open(os.path.join(run_dir, "summary.txt"), "w") as handle:
            handle.write(text + "\n")
        published = None
        if report_uri:
            published = publish_run_dir(run_dir, report_uri, args["run_id"], args["storage_options"])
            if published["error"]:
                text += " - NOT uploaded: %s" % published["error"]
            else:
                text += " (%d files)" % published["files"]
        if args["show"] or summary["status"] != "succeeded":  # a failed run's report is shown where it fails
            display.display(text)
        result.update(changed=bool(published and published["files"] and not published["error"]), summary=summary,
                      summary_text=text, run_dir=run_dir, summary_path=os.path.join(run_dir, "summary.json"),
                      report_uri=summary.get("report_uri", ""))
        if published is not None:
            result["report_upload"] = published
        if summary["status"] != "succeeded":
            result.update(failed=True, msg=failure_message(summary, args["unstopped"]))
        elif published is not None and published["error"]:
            result.update(failed=True, msg="run %s succeeded, but its run directory could not be uploaded to %s: %s"
                          % (args["run_id"], published["uri"], published["error"]))
        else:
            result["msg"] = text
        return result
