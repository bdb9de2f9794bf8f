#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: torchrun_job
short_description: Start or stop one node's part of a torchrun job, in a transient systemd unit
version_added: 0.1.0
description:
  - Runs this node's C(torchrun) in a transient systemd unit named C(aiinfra-torchrun-<run_id>.service)
    (C(systemd-run), C(KillMode=control-group), C(RuntimeMaxSec), output appended to a log file), so that
    stopping the unit stops torchrun and every worker it started, whatever session the workers put
    themselves in.
  - With O(state=started) a unit of the same run id that is still running is attached to, not started twice;
    a node already running another run fails with a message naming it.
  - Works out the node's share at run time, the number of GPUs (for the spec's C(nproc_per_node=auto)) and the
    network interface that holds the spec's C(private_address) (for C(NCCL_SOCKET_IFNAME) and C(GLOO_SOCKET_IFNAME)).
  - In check mode nothing is written or started and RV(command) is the exact command the node would run.
  - The torchrun role (M(aiinfra.gpu_cluster.torchrun_watch) and M(aiinfra.gpu_cluster.torchrun_report)) drives
    this module on every node at once; on its own it is one node's launcher.
author:
  - aiinfra platform team (@aiinfra)
attributes:
  check_mode:
    support: full
    description: Returns the command that would run; starts and writes nothing.
  diff_mode:
    support: none
    description: Not applicable.
extends_documentation_fragment:
  - aiinfra.gpu_cluster.torchrun
options:
  state:
    description:
      - C(started) starts (or attaches to) the run on this node.
      - C(stopped) stops the run's unit, then makes sure no process of the run is left (and no container of the
        run); idempotent.
    type: str
    choices: [started, stopped]
    default: started
  spec:
    description:
      - Required with O(state=started). This node's launch spec, as the M(aiinfra.gpu_cluster.torchrun_plan) action
        builds it from the torchrun role's settings (its C(specs[host]), a C(LaunchSpec)); its keys are
        (C(job_name), C(workdir), C(checkpoint_dir), C(torchrun), C(script) or C(module), C(script_args), C(nnodes),
        C(node_rank), C(nproc_per_node), C(cpu_nproc_per_node), C(rdzv_host), C(rdzv_port), C(rdzv_is_host),
        C(rdzv_timeout), C(local_addr), C(max_restarts), C(env), C(nccl_debug), C(agent_log_level),
        C(socket_ifname), C(private_address), C(timeout), C(stop_timeout), C(user), C(rank_hosts), C(docker),
        C(checkpoint)).
      - With a C(checkpoint) (C(uri), C(dir), C(client_dir), C(python), C(env_file), C(interval), C(stable_seconds),
        C(final_timeout)), the checkpoint directory's files are given to the job's user and a checkpoint uploader
        starts beside the job in the same call (see RV(uploader)); its credentials come from C(env_file), a root-only
        file the torchrun role writes, never from this module's arguments.
    type: dict
  rdzv_id:
    description: The rendezvous id (fresh for every launch); defaults to O(run_id).
    type: str
  secret_env:
    description:
      - Environment for the job that must not be seen (tokens, passwords, keys). It reaches the job only through a
        root-only file (mode 0600) in the run directory, read by systemd (or by C(docker run --env-file)), never
        on a command line, in the launch script, in a result or in a file anyone but root can read.
      - The names only are in the spec (C(secret_env_names)).
    type: dict
    default: {}
  script_content:
    description:
      - The script's content (read on the controller). When given, the spec's C(script) is written with it (owned by
        its C(user)) whenever it differs, as part of the launch, so a launch is a single round trip to each node.
      - For a code tree larger than one file, install it on the nodes (C(module)) or in an image (C(docker)).
    type: str
  restart_finished:
    description:
      - What to do when this run id already ran to its end on this node. C(false) leaves it (the result is
        reported again); C(true) starts it again (the old log is kept as C(torchrun.log.N)).
    type: bool
    default: false
  hosts_file:
    description:
      - Where the spec's C(rank_hosts) are written as a managed block (marked C(aiinfra.gpu_cluster torchrun node
        names)), so that every node resolves every other node's rendezvous name (C(local_addr)). Empty leaves it
        alone.
      - Written in place (not replaced), as C(/etc/hosts) is a bind mount in containers.
    type: path
    default: /etc/hosts
notes:
  - Needs systemd (C(systemd-run)) and root (use C(become)).
  - The privilege boundary. The run directory and everything root writes or runs there (C(launch.sh) and
    C(poststop.sh), mode 0700; C(exit.json), C(meta.json), the secret environment file, 0600) are root's; the job's
    user owns only its working directory, its checkpoints, its outputs and its per-rank logs. The unit runs the
    launch script as root, which drops to the job's user (C(setpriv), no new privileges, so no sudo) or, in Docker
    mode, runs the container as that user's uid with only the job's own directories mounted. Every operation of
    root on a path under a directory the job can write opens it without following a symbolic link.
seealso:
  - module: aiinfra.gpu_cluster.torchrun_watch
  - module: aiinfra.gpu_cluster.torchrun_plan
"""

EXAMPLES = r"""
- name: Plan the job once (every node's launch spec)
  aiinfra.gpu_cluster.torchrun_plan:
    settings:
      script: train.py
      script_args: --steps 300
      job_name: example
      workdir: /var/lib/aiinfra/torchrun/jobs/example
      bin: /opt/aiinfra/pytorch/bin/torchrun
  register: job
  run_once: true

- name: Start this node's part of the run
  aiinfra.gpu_cluster.torchrun_job:
    run_id: "{{ job.run_id }}"
    spec: "{{ job.specs[inventory_hostname] }}"
    script_content: "{{ lookup('ansible.builtin.file', job.script) }}"
  become: true

- name: Stop it (every worker goes with it)
  aiinfra.gpu_cluster.torchrun_job:
    run_id: 20260101-120000-ab12cd
    state: stopped
  become: true
"""

RETURN = r"""
action:
  description: What happened, C(started), C(attached) (already running), C(finished) (ran before, left as is),
    C(stopped), C(absent) (nothing to stop) or C(check) (check mode).
  returned: always
  type: str
command:
  description: The node's exact command, as one shell line (C(cd WORKDIR && VAR=... torchrun ...)).
  returned: when state=started
  type: str
argv:
  description: The command the unit executes.
  returned: when state=started
  type: list
  elements: str
nproc_per_node:
  description: The number of processes this node runs.
  returned: when state=started
  type: int
gpu_count:
  description: GPUs found on the node.
  returned: when state=started
  type: int
socket_ifname:
  description: The interface given to NCCL and Gloo (empty when none was found).
  returned: when state=started
  type: str
script_changed:
  description: Whether the spec's C(script) was (or, in check mode, would be) written from O(script_content).
  returned: when state=started
  type: bool
hosts_changed:
  description: Whether O(hosts_file) was (or would be) changed.
  returned: when state=started
  type: bool
unit:
  description: The systemd unit.
  returned: always
  type: str
  sample: aiinfra-torchrun-20260101-120000-ab12cd.service
node_run_dir:
  description: The run directory on the node (the controller's copy of the logs and the report are elsewhere).
  returned: always
  type: str
log_path:
  description: The node's log of the run.
  returned: always
  type: str
uploader:
  description: The checkpoint uploader's unit (C(aiinfra-ckpt-<run_id>.service)), started beside the job when the spec
    has a C(checkpoint) (C(torchrun_checkpoint_uri)); it is bound to the job's unit and makes a last push when the job
    ends or is stopped.
  returned: when state=started, the spec has a checkpoint and the job was started
  type: str
output_dir:
  description:
    - Where the job writes what comes back to the controller (C(AIINFRA_OUTPUT_DIR) in its environment), made
      for it, owned by the job's user. The torchrun role brings it into the run directory after the job.
  returned: when state=started
  type: str
started_at:
  description: When this node's unit was started (epoch seconds).
  returned: when state=started and not in check mode
  type: float
exit:
  description: How the unit ended (C(result), C(code), C(status), C(time)), when it left a record (state=stopped).
  returned: when state=stopped
  type: dict
killed_leftovers:
  description: PIDs of processes of the run that outlived the unit and were killed (state=stopped).
  returned: when state=stopped
  type: list
  elements: int
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.job import Node  # noqa: E402
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.runner import execute  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_id=dict(type="str", required=True),
            state=dict(type="str", choices=["started", "stopped"], default="started"),
            base_dir=dict(type="path", default="/var/lib/aiinfra/torchrun"),
            spec=dict(type="dict"),
            rdzv_id=dict(type="str"),
            script_content=dict(type="str"),
            restart_finished=dict(type="bool", default=False),
            hosts_file=dict(type="path", default="/etc/hosts"),
            secret_env=dict(type="dict", default={}, no_log=True),
        ),
        required_if=[("state", "started", ("spec",))],
        supports_check_mode=True,
    )
    result = execute(dict(module.params), Node.of_module(module))
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
