# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for aiinfra.gpu_cluster.torchrun_watch (documented in plugins/modules/torchrun_watch.py).

Runs for every node of the job at once (one worker process per node, as any task). Each one polls its
node with a small sh script (module_utils ``poll_script``: a long poll on the unit, its exit record, the new
part of its log; no Python started on the node), writes what it saw to ``<run_dir>/.watch/<host>.json`` on the controller
and reads everybody else's file, so that every node's watcher reaches the same verdict (module_utils
``decide``) within one poll: they all end together, as soon as the job is done or any node failed,
stopped answering, missed the rendezvous deadline or ran out of time.
"""

from __future__ import annotations

import json
import os
import threading
import time

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import (
    LogState, decide, node_phase, parse_poll, poll_script, unit_name, watch_dir)

display = Display()

ARGUMENT_SPEC = dict(
    run_id=dict(type="str", required=True),
    base_dir=dict(type="str", default="/var/lib/aiinfra/torchrun"),
    run_dir=dict(type="str", required=True),
    hosts=dict(type="dict", required=True),
    started=dict(type="float", required=True),
    launch=dict(type="dict", default={}),
    interval=dict(type="float", default=2.0),
    node_timeout=dict(type="float", default=20.0),
    rdzv_timeout=dict(type="float", default=600.0),
    timeout=dict(type="float", default=86400.0),
    progress_interval=dict(type="float", default=10.0),
    probe=dict(type="str"),
)


def write_json(path, data):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.rename(tmp, path)


def read_states(state_dir, hosts):
    states = {}
    for host in hosts:
        try:
            with open(os.path.join(state_dir, "%s.json" % host)) as handle:
                states[host] = json.load(handle)
        except (IOError, OSError, ValueError):
            continue
    return states


def progress_line(run_id, states, hosts, verdict, elapsed):
    phases = verdict["phases"]
    order = sorted(hosts, key=lambda h: hosts[h])
    running = sum(1 for h in order if phases[h] in ("running", "succeeded"))
    joined = sum(1 for h in order if ((states.get(h) or {}).get("log") or {}).get("joined")
                 or phases[h] == "succeeded")
    ranks = sum(len(((states.get(h) or {}).get("log") or {}).get("ranks") or []) for h in order)
    world = sum(int((states.get(h) or {}).get("nproc_per_node") or 0) for h in order)
    parts = ["%d/%d nodes up" % (running, len(order)), "rendezvous %d/%d" % (joined, len(order))]
    if ranks or world:
        parts.append("ranks in %d/%s" % (ranks, world or "?"))
    latest = None
    for host in order:
        step = ((states.get(host) or {}).get("log") or {}).get("last_step")
        if step and (latest is None or step.get("step", 0) >= latest.get("step", 0)):
            latest = step
    line = "torchrun %s [%3ds] %s" % (run_id, elapsed, ", ".join(parts))
    if latest:
        line += " | step %s loss %s" % (latest.get("step"), latest.get("loss"))
        if latest.get("samples_per_s") is not None:
            line += " (%s samples/s)" % latest.get("samples_per_s")
    odd = ["%s %s" % (h, phases[h]) for h in order if phases[h] not in ("running", "succeeded")]
    if odd:
        line += " | " + ", ".join(odd)
    return line


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def _poll(self, command, probe, timeout):
        """One poll of this node (a plain sh script over the task's connection: no module, no Python on the node),
        in a thread, so that a node that hangs cannot hang the watcher."""
        box = {}

        def target():
            try:
                box["result"] = self._low_level_execute_command(command, sudoable=False)
            except Exception as exc:  # connection failures arrive as exceptions
                box["error"] = to_text(exc).strip().splitlines()[0] if to_text(exc).strip() else repr(exc)

        thread = threading.Thread(target=target, name="torchrun-poll")
        thread.daemon = True
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            return None, "no answer within %.0fs" % timeout
        if "error" in box:
            return None, box["error"]
        res = box["result"]
        try:
            return parse_poll(to_text(res.get("stdout", ""), errors="surrogate_or_replace"), probe), None
        except ValueError:
            lines = to_text(res.get("stderr") or res.get("stdout") or "no output").strip().splitlines()
            return None, "poll failed (rc %s): %s" % (res.get("rc"), lines[-1] if lines else "")

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        host = task_vars["inventory_hostname"]
        hosts = dict((k, int(v)) for k, v in args["hosts"].items())
        if host not in hosts:
            raise AnsibleError("torchrun_watch: %s is not in hosts (%s)" % (host, ", ".join(sorted(hosts))))
        state_dir = watch_dir(args["run_dir"], args["started"])
        os.makedirs(state_dir, exist_ok=True)
        settings = {"node_timeout": args["node_timeout"], "rdzv_timeout": args["rdzv_timeout"],
                    "timeout": args["timeout"]}
        launch = args["launch"] or {}
        started = args["started"]
        interval = max(0.2, args["interval"])
        # a poll may be slow (a loaded node, a network blip): only node_timeout without an answer loses a node
        call_timeout = max(interval + 5.0, args["node_timeout"])
        log = LogState()
        run_dir = "%s/runs/%s" % (args["base_dir"].rstrip("/"), args["run_id"])
        unit = unit_name(args["run_id"])
        me = {"host": host, "node_rank": hosts[host], "t": time.time(), "active": True, "exit": None,
              "started": launch.get("action") in ("started", "attached", "finished"),
              "started_at": launch.get("started_at"), "nproc_per_node": launch.get("nproc_per_node"),
              "lost": None, "log": log.snapshot(), "probe": None, "timeout": int(args["timeout"]), "polls": 0}
        offset, finished, last_print, last_phases, last_probe = 0, False, 0.0, None, 0.0
        reporter = hosts[host] == min(hosts.values())
        verdict = None
        while True:
            now = time.time()
            if not finished and not me["lost"]:
                probe = None
                if args["probe"] and not log.attempted and now - started > min(10.0, args["rdzv_timeout"] / 3) \
                        and now - last_probe > 10:
                    probe = args["probe"]
                    last_probe = now
                command = poll_script(run_dir, unit, offset, wait=interval if me["active"] else 0, probe=probe)
                res, error = self._poll(command, probe, call_timeout)
                if error and "no answer" not in error:
                    time.sleep(1.0)  # one retry: an SSH hiccup is not a dead node
                    res, error = self._poll(command, probe, call_timeout)
                if error:
                    me.update(lost=error, lost_at=time.time())
                else:
                    me["polls"] += 1
                    if res.get("log_start", offset) > offset:
                        log.line("[... %d bytes of log skipped ...]" % (res["log_start"] - offset))
                    log.feed(res.get("log_chunk") or "")
                    offset = res.get("log_offset", offset)
                    me.update(active=res.get("active"), exit=res.get("exit"), unit_state=res.get("unit_state"))
                    if res.get("probe"):
                        me["probe"] = res["probe"]
                    if not res.get("active"):
                        log.finish()
                        finished = True
                me["log"] = log.snapshot()
            me["t"] = time.time()
            write_json(os.path.join(state_dir, "%s.json" % host), me)
            states = read_states(state_dir, hosts)
            states[host] = me
            verdict = decide(states, hosts, time.time(), started, settings)
            if reporter:
                phases = tuple(sorted(verdict["phases"].items()))
                if verdict["done"] or phases != last_phases or time.time() - last_print >= args["progress_interval"]:
                    display.display(progress_line(args["run_id"], states, hosts, verdict, time.time() - started))
                    last_print, last_phases = time.time(), phases
            if verdict["done"]:
                break
            if finished or me["lost"]:
                time.sleep(interval)
        result.update(changed=False, node=me, phase=node_phase(me), verdict=verdict,
                      lost=bool(me["lost"]))
        return result
