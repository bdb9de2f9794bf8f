# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for aiinfra.gpu_cluster.torchrun_watch (documented in plugins/modules/torchrun_watch.py).

Runs once for the whole job (the role sets ``run_once``), in one controller process whatever Ansible's
forks: rounds of one short poll on every node at once (plugin_utils ``torchrun.poll``), then one decision
over all of them (plugin_utils ``torchrun.verdict``), until the job is done or anything failed. Interrupting the
play meanwhile (Ctrl-C) stops the run before the worker ends (plugin_utils ``torchrun.interrupt``).
"""

from __future__ import annotations

import threading
import time

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import action_loader
from ansible.utils.display import Display

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.argspec import argument_spec_for
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.core_compat import host_connection, require_known
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import RunDir
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import interrupt
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.poll import Poller
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.verdict import decide

display = Display()
CONNECT = threading.Lock()  # plugin loaders are not made for threads: one connection made at a time


def progress_line(run_id, states, verdict, elapsed):
    phases = verdict.phases
    order = sorted(states, key=lambda h: states[h].node_rank)
    running = sum(1 for h in order if phases[h] in ("running", "succeeded"))
    joined = sum(1 for h in order if states[h].log.get("joined") or phases[h] == "succeeded")
    ranks = sum(len(states[h].log.get("ranks") or []) for h in order)
    world = sum(int(states[h].nproc_per_node or 0) for h in order)
    parts = ["%d/%d nodes up" % (running, len(order)), "rendezvous %d/%d" % (joined, len(order))]
    if ranks or world:
        parts.append("ranks in %d/%s" % (ranks, world or "?"))
    latest = None
    for host in order:
        step = states[host].log.get("last_step")
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


def note_times(times, states, verdict, now):
    """Record (once) when every node was running and had joined the rendezvous, and when a step was first logged:
    the end of a recovery's timeline."""
    if times["running"] is None and states and all(
            verdict.phases.get(h) in ("running", "succeeded") and (s.log.get("joined") or s.log.get("ranks"))
            for h, s in states.items()):
        times["running"] = now
    if times["first_step"] is None and any(s.log.get("last_step") for s in states.values()):
        times["first_step"] = now


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=argument_spec_for("torchrun_watch"))
        hosts = dict((k, int(v)) for k, v in args["hosts"].items())
        if not hosts:
            raise AnsibleError("torchrun_watch: no hosts to watch")
        interval = max(0.2, args["interval"])
        require_known("torchrun_watch")  # an unknown ansible-core fails here, never as every node lost
        # a poll may be slow (a loaded node, a network blip): only node_timeout without an answer loses a node
        poller = Poller(hosts, lambda host: host_connection(self, host, task_vars), args["base_dir"], args["run_id"],
                        probe=args["probe"], timeout=int(args["timeout"]))
        try:
            if args["once"]:
                poller.round(0.0, max(interval + 5.0, args["node_timeout"]))
                states = poller.states()
                result.update(changed=False, nodes=dict((h, s.to_dict()) for h, s in states.items()))
                return result
            with interrupt.interruptible() as previous:
                try:
                    return self._watch(result, args, poller, interval)
                except interrupt.Interrupted as exc:
                    with interrupt.held(restore=previous):
                        self._stop_interrupted(args, hosts, task_vars)
                    signum = exc.signum
            interrupt.redeliver(signum, previous)  # the worker's own handler ends it, as without the watch
            raise AnsibleError("torchrun_watch: interrupted")  # where that handler did not end the process
        finally:
            poller.close()

    def _stop_interrupted(self, args, hosts, task_vars):
        """The play was interrupted: stop the run (scancel its Slurm job, else stop its unit on every node)."""
        if args["on_interrupt"] != "stop":
            return {}
        ranked = sorted(hosts, key=hosts.get)
        commands = interrupt.stop_commands(ranked, RunDir(args["base_dir"], args["run_id"]).unit,
                                           args["slurm_job_id"], args["slurm_host"] or ranked[0])

        def execute(host, command):
            with CONNECT:
                connection = host_connection(self, host, task_vars, become=True)
                runner = action_loader.get(
                    "ansible.legacy.normal", task=self._task, connection=connection, play_context=self._play_context,
                    loader=self._loader, templar=self._templar, shared_loader_obj=self._shared_loader_obj)
            try:
                res = runner._low_level_execute_command(command, sudoable=True)
                return res.get("rc"), res.get("stdout", ""), res.get("stderr", "")
            finally:
                connection.close()
        return interrupt.run_everywhere(commands, execute, timeout=max(30.0, float(args["node_timeout"])))

    def _watch(self, result, args, poller, interval):
        started = args["started"] or time.time()
        settings = {"node_timeout": args["node_timeout"], "rdzv_timeout": args["rdzv_timeout"],
                    "timeout": args["timeout"]}
        last_print, last_phases, last_probe = 0.0, None, 0.0
        times = {"running": None, "first_step": None}  # when every node had joined; when a step was first logged
        while True:
            now = time.time()
            probe_hosts = ()
            if args["probe"] and now - started > min(10.0, args["rdzv_timeout"] / 3) and now - last_probe > 10:
                # nodes whose agent has not reached the rendezvous yet: can they reach its endpoint at all?
                probe_hosts = [h for h, s in poller.states().items() if not s.log.get("attempted")]
                last_probe = now if probe_hosts else last_probe
            poller.round(interval, interval + 3.0, probe_hosts)
            states = poller.states()
            now = time.time()
            verdict = decide(states, now, started, settings)
            note_times(times, states, verdict, now)
            phases = tuple(sorted(verdict.phases.items()))
            if verdict.done or phases != last_phases or now - last_print >= args["progress_interval"]:
                display.display(progress_line(args["run_id"], states, verdict, now - started))
                last_print, last_phases = now, phases
            if verdict.done:
                break
            if all(node.finished or node.state.lost for node in poller.nodes.values()):
                time.sleep(min(interval, 1.0))  # waiting for the settle time of a verdict
        lost = [h for h in sorted(states, key=lambda h: states[h].node_rank) if verdict.phases[h] == "lost"]
        result.update(changed=False, verdict=verdict.to_dict(), nodes=dict((h, s.to_dict()) for h, s in states.items()),
                      lost=lost, times=dict(times, ended=time.time()))
        return result
