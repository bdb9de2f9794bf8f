# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for aiinfra.gpu_cluster.torchrun_slurm (documented in plugins/modules/torchrun_slurm.py).

Runs the module as usual. With ``state: running`` - the wait in the Slurm queue, which may last hours - it runs
the module in slices of at most ``SLICE`` seconds on the controller's side of the wait, so that interrupting the
play meanwhile (Ctrl-C) cancels the job before the worker ends (plugin_utils ``torchrun.interrupt``), as the
watch does once the job runs; a module left waiting on the node would not hear of it. Each slice the job still
waits says so (a line in the play's output); the slices add up to one result: how long the job waited in all,
behind which jobs.
"""

from __future__ import annotations

import math
import time

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.slurm import QUEUED, wait_message
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import interrupt

display = Display()
MODULE = "aiinfra.gpu_cluster.torchrun_slurm"
SLICE = 20  # seconds one run of the module waits in the queue


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        try:
            if args.get("state") != "running" or self._task.check_mode:
                result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
                return result
            with interrupt.interruptible() as previous:
                try:
                    result.update(self._wait(args, task_vars))
                    return result
                except interrupt.Interrupted as exc:
                    signum = exc.signum
                    with interrupt.held(restore=previous):
                        if args.get("on_interrupt", "stop") == "stop":
                            self._execute_module(module_name=MODULE, task_vars=task_vars, module_args={
                                "state": "cancelled", "job_id": args.get("job_id"), "run_id": args.get("run_id")})
            interrupt.redeliver(signum, previous)  # the worker's own handler ends it
            raise AnsibleError("torchrun_slurm: interrupted")  # where that handler did not end the process
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _wait(self, args, task_vars):
        """The module's wait, in slices; one result for the whole wait."""
        timeout = int(args.get("timeout") or 0)
        began = time.time()
        ahead = []
        while True:
            left = timeout - (time.time() - began) if timeout > 0 else None
            piece = SLICE if left is None else max(1, min(SLICE, int(math.ceil(left))))
            res = self._execute_module(module_name=MODULE, module_args=dict(args, timeout=piece),
                                       task_vars=task_vars)
            for job in res.get("ahead") or []:
                if job not in ahead:
                    ahead.append(job)
            still = res.get("job_state") in QUEUED
            if not (still and (left is None or left > piece)):
                break
            display.display("run %s: Slurm job %s still waits in the Slurm queue (%.0f s)%s" % (
                args.get("run_id"), args.get("job_id"), time.time() - began,
                " behind job%s %s" % ("s" if len(res.get("ahead") or []) > 1 else "", ", ".join(res["ahead"]))
                if res.get("ahead") else ""))
        waited = time.time() - began
        res.update(ahead=ahead, waited=waited)
        if "job_state" in res:
            message = wait_message(args.get("run_id"), args.get("job_id"), res["job_state"], waited, ahead, timeout)
            res["message"] = message
            if res.get("failed"):
                res["msg"] = message
        return res
