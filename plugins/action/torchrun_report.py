# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for aiinfra.gpu_cluster.torchrun_report (documented in plugins/modules/torchrun_report.py).

Runs on the controller only, and does the controller's part only: reads its arguments and the node logs fetched
into the run directory, has the report made (plugin_utils ``torchrun.report.build_report``: the summary, its text,
``loss.png``), writes ``summary.json`` and ``summary.txt``, uploads the run directory (``report_uri``), shows the
summary, and fails with the cause when the job failed.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.argspec import argument_spec_for
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.log import parse_log
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.publish import publish_run_dir
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.report import build_report, failure_message

display = Display()


def read_logs(run_dir, hosts, watch):
    """The node logs fetched into the run directory, parsed (host -> LogState), and where each node's log is
    (host -> path): a node whose log was not fetched (it stopped answering) gets what the poller saw of it, kept
    as ``HOST/torchrun.partial.log``."""
    parsed, paths = {}, {}
    watched = (watch or {}).get("nodes") or {}
    for host in hosts:
        path = os.path.join(run_dir, host, "torchrun.log")
        if os.path.exists(path):
            with open(path, errors="replace") as handle:
                parsed[host] = parse_log(handle.read())
            paths[host] = path
            continue
        tail = ((watched.get(host) or {}).get("log") or {}).get("tail") or []
        if tail:
            path = os.path.join(run_dir, host, "torchrun.partial.log")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as handle:
                handle.write("\n".join(tail) + "\n")
            paths[host] = path
    return parsed, paths


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        # the options plugins/modules/torchrun_report.py documents (the object store's connection is a secret)
        dummy, args = self.validate_argument_spec(
            argument_spec=argument_spec_for("torchrun_report", no_log=("storage_options",)))
        run_dir = os.path.abspath(args["run_dir"])
        parsed, log_paths = read_logs(run_dir, args["hosts"], args["watch"])
        run = {"run_id": args["run_id"], "job": args["job"], "started": args["started"], "ended": time.time(),
               "rdzv_endpoint": args["rdzv_endpoint"], "framework": args["framework"]}
        summary, text, warnings = build_report(
            run, args["hosts"], watch=args["watch"], logs=parsed, log_paths=log_paths, addresses=args["addresses"],
            stops=args["stops"], unstopped=args["unstopped"], outputs=args["outputs"],
            utilisation=args["utilisation"], prices=args["prices"], attempts=args["attempts"],
            max_recoveries=args["max_recoveries"], checkpoints=args["checkpoints"], report_uri=args["report_uri"],
            plot_path=os.path.join(run_dir, "loss.png") if args["plot"] else None, health=args.get("health"))
        for warning in warnings:
            display.warning(warning)
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "summary.json"), "w") as handle:
            json.dump(summary, handle, indent=2, sort_keys=False)
        with open(os.path.join(run_dir, "summary.txt"), "w") as handle:
            handle.write(text + "\n")
        published = None
        if summary.get("report_uri"):
            published = publish_run_dir(run_dir, args["report_uri"].strip(), args["run_id"], args["storage_options"])
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
