#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: torchrun_slurm
short_description: Submit, follow and cancel the Slurm job of a torchrun run (torchrun_launcher=slurm)
version_added: 0.1.0
description:
  - Runs on a node of the cluster that has the Slurm client (the torchrun role runs it on the node of rank 0) and
    talks to C(slurmctld) through C(scontrol), C(sacctmgr), C(sbatch), C(squeue), C(scancel) and C(sacct).
  - O(state=ready) checks that Slurm answers (C(scontrol ping)); with O(account), that the job's user has an
    association in Slurm's accounting (adding the account and the user when missing; the user must exist on the
    node first, as slurmctld maps the name to a uid when the association is added).
  - O(state=submitted) submits the run as one C(sbatch) job of the run's nodes, as the job's user (one C(srun) task a
    node running the step that C(torchrun_job) laid out there); a job of the same name still in the queue is reused.
  - O(state=running) waits until the job runs, naming the jobs it waited behind. Interrupting the play meanwhile
    cancels the job (O(on_interrupt)).
  - O(state=cancelled) cancels it (C(scancel)). Its record in Slurm's accounting is C(sacct -j JOB_ID).
author:
  - aiinfra platform team (@aiinfra)
attributes:
  check_mode:
    support: partial
    details: O(state=ready) and O(state=running) only look; O(state=submitted) and O(state=cancelled) change nothing
      and say what they would do.
    description: Only looks at Slurm in check mode.
  diff_mode:
    support: none
    description: Not applicable.
options:
  state:
    description: What to do.
    type: str
    choices: [ready, submitted, running, cancelled]
    required: true
  run_id:
    description: The run id (the job's name).
    type: str
  user:
    description: The job's user (the submitter).
    type: str
    default: aiinfra-job
  account:
    description: The Slurm account for the job's user (O(state=ready) adds both when missing; empty leaves it).
    type: str
    default: ""
  hosts:
    description: The Slurm names of the job's nodes (O(state=submitted)).
    type: list
    elements: str
    default: []
  run_dir:
    description: The run directory on every node (where C(torchrun_job) wrote the step).
    type: path
  workdir:
    description: The job's working directory (the batch script's C(--chdir)).
    type: path
  time_limit:
    description: Seconds the job may run (C(--time), rounded up to minutes, one minute of margin); 0 sets none.
    type: int
    default: 0
  job_id:
    description: The job (O(state=running), O(state=cancelled)); O(state=cancelled) without it
      cancels the run's job still in the queue, found by its name (O(run_id)).
    type: str
  timeout:
    description: Seconds O(state=running) waits in the queue (0 waits on).
    type: int
    default: 0
  interval:
    description: Seconds between looks at the queue.
    type: float
    default: 2
  on_interrupt:
    description:
      - What interrupting the play (Ctrl-C) during O(state=running) does to the job waiting in the queue - C(stop)
        cancels it before the play ends, C(leave) leaves it queued. The wait runs in slices of 20 s on the
        controller's side (this module's action plugin) so that it can.
    type: str
    choices: [stop, leave]
    default: stop
"""

EXAMPLES = r"""
- name: Submit the run
  aiinfra.gpu_cluster.torchrun_slurm:
    state: submitted
    run_id: "{{ plan.run_id }}"
    hosts: "{{ plan.hosts | list }}"
    run_dir: "{{ plan.node.run_dir }}"
    workdir: /var/lib/aiinfra/torchrun/jobs/example
  become: true
"""

RETURN = r"""
job_id:
  description: The Slurm job.
  returned: state is submitted, running or cancelled
  type: str
job_state:
  description: squeue's (or sacct's) state of the job.
  returned: state is submitted or running
  type: str
reason:
  description: Why a pending job waits (squeue's reason).
  returned: state is submitted
  type: str
ahead:
  description: The jobs ahead of this one in the queue (submitted), or those it waited behind (running).
  returned: state is submitted or running
  type: list
  elements: str
message:
  description: What the play shows (a pending job says it is waiting in the Slurm queue behind which jobs).
  returned: state is submitted or running
  type: str
waited:
  description: Seconds the job waited in the queue (state=running).
  returned: state is running
  type: float
started:
  description: When the job was seen running (epoch seconds on this node).
  returned: state is running
  type: float
"""

import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.slurm import (  # noqa: E402
    QUEUED, Slurm, SlurmError, ahead_of, batch_script, pending_message, sbatch_argv, wait_message)

NO_SLURM = ("torchrun_launcher=slurm needs Slurm on the cluster (the slurm role: playbooks/slurm.yml, or site.yml "
            "with gpu_cluster_scheduler: slurm)")


def ready(module, slurm):
    p = module.params
    for tool in ("scontrol", "sbatch", "srun", "squeue", "sacctmgr"):
        if not module.get_bin_path(tool):
            module.fail_json(msg="%s: %s is not installed on the node of rank 0" % (NO_SLURM, tool))
    ok, text = slurm.ping()
    if not ok:
        module.fail_json(msg="%s: slurmctld does not answer (scontrol ping: %s)" % (NO_SLURM, text))
    changed = False
    if not p["account"]:
        module.exit_json(changed=False, ping=text)
    rc, out, err = module.run_command(["sacctmgr", "-n", "-P", "list", "assoc", "user=%s" % p["user"],
                                       "format=account"])
    if rc == 0 and not out.strip() and not module.check_mode:
        rc, accounts, err = module.run_command(["sacctmgr", "-n", "-P", "list", "account", "format=account"])
        if p["account"] not in accounts.split():
            module.run_command(["sacctmgr", "-i", "add", "account", p["account"],
                                "description=aiinfra.gpu_cluster users"], check_rc=True)
        module.run_command(["sacctmgr", "-i", "add", "user", p["user"], "account=%s" % p["account"]], check_rc=True)
        changed = True
    module.exit_json(changed=changed, ping=text)


def submit(module, slurm):
    p = module.params
    job = slurm.find(p["run_id"])
    if job is None:
        if module.check_mode:
            module.exit_json(changed=True, job_id="", job_state="", reason="", ahead=[], message="would submit")
        argv = sbatch_argv(p["run_id"], p["user"], p["hosts"], "%s/slurm-%%j.out" % p["workdir"].rstrip("/"),
                           p["workdir"], p["time_limit"], "")
        job_id = slurm.submit(argv, batch_script(p["run_dir"], len(p["hosts"])))
        changed = True
    else:
        job_id, changed = job["id"], False
    state, reason = slurm.state(job_id)
    ahead = ahead_of(slurm.queue(), job_id) if state in QUEUED else []
    message = (pending_message(p["run_id"], job_id, reason, ahead) if state in QUEUED
               else "run %s: Slurm job %s is %s" % (p["run_id"], job_id, state))
    module.exit_json(changed=changed, job_id=job_id, job_state=state, reason=reason, ahead=ahead, message=message)


def running(module, slurm):
    p = module.params
    began = time.time()
    state, ahead = slurm.wait_running(p["job_id"], p["timeout"], p["interval"])
    waited = time.time() - began
    result = dict(changed=False, job_id=p["job_id"], job_state=state, ahead=ahead, waited=waited,
                  started=time.time())
    result["message"] = wait_message(p["run_id"], p["job_id"], state, waited, ahead, p["timeout"])
    if state == "RUNNING":
        module.exit_json(**result)
    module.fail_json(msg=result["message"], **dict((k, v) for k, v in result.items() if k != "message"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["ready", "submitted", "running", "cancelled"], required=True),
            run_id=dict(type="str"),
            user=dict(type="str", default="aiinfra-job"),
            account=dict(type="str", default=""),
            hosts=dict(type="list", elements="str", default=[]),
            run_dir=dict(type="path"),
            workdir=dict(type="path"),
            time_limit=dict(type="int", default=0),
            job_id=dict(type="str"),
            timeout=dict(type="int", default=0),
            interval=dict(type="float", default=2.0),
            on_interrupt=dict(type="str", choices=["stop", "leave"], default="stop"),
        ),
        required_if=[("state", "submitted", ("run_id", "hosts", "run_dir", "workdir")),
                     ("state", "running", ("job_id",)), ("state", "cancelled", ("job_id", "run_id"), True)],
        supports_check_mode=True,
    )
    slurm = Slurm(module.run_command)
    state = module.params["state"]
    try:
        if state == "ready":
            ready(module, slurm)
        elif state == "submitted":
            submit(module, slurm)
        elif state == "running":
            running(module, slurm)
        elif state == "cancelled":
            job_id = module.params["job_id"]
            if not job_id:  # the run's job still in the queue, by its name
                job = slurm.find(module.params["run_id"])
                if job is None:
                    module.exit_json(changed=False, job_id="")
                job_id = job["id"]
            if module.check_mode:
                module.exit_json(changed=True, job_id=job_id)
            ok, text = slurm.cancel(job_id)
            if not ok:
                module.fail_json(msg="scancel %s failed: %s" % (job_id, text))
            module.exit_json(changed=True, job_id=job_id)
    except SlurmError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
