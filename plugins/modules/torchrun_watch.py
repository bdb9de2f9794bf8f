#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: torchrun_watch
short_description: Watch a torchrun job on every node until it is done or anything fails
version_added: 0.1.0
description:
  - Runs once for the whole job (C(run_once)), on the controller (an action plugin), whatever Ansible's C(forks)
    are. It works in rounds, one short poll on every node at once, each over that node's own connection (made from its
    inventory variables as Ansible makes a task's connection; a small C(sh) script that waits a little for the
    run's unit to stop, then prints its state, its exit and launch records and the new part of its log, without
    starting Python on the node), then one decision over every node's latest state.
  - The task ends as soon as every node finished with exit code 0, or any node failed, stopped answering for
    O(node_timeout) seconds, the rendezvous did not complete within O(rdzv_timeout) seconds (naming the nodes that
    did not join, with a TCP probe of the rendezvous endpoint from each of them), or the job ran past O(timeout).
    When a node fails, nodes that stopped answering just before get a moment to answer; one that stays silent is
    named first, as lost.
  - Prints progress (nodes up, rendezvous, ranks in, latest step and loss) every O(progress_interval) seconds and
    whenever a node changes phase.
  - With O(once=true), one round and no verdict, for every node's state of a run that may have run before.
  - It never fails; the verdict is returned for M(aiinfra.gpu_cluster.torchrun_report).
  - Interrupting the play while it watches (Ctrl-C) stops the run first (O(on_interrupt)); ansible-playbook waits for
    that before it exits.
author:
  - aiinfra platform team (@aiinfra)
attributes:
  check_mode:
    support: none
    description: Watches a running job; the torchrun role skips it in check mode.
  diff_mode:
    support: none
    description: Not applicable.
  action:
    support: full
    description: Runs on the controller.
extends_documentation_fragment:
  - aiinfra.gpu_cluster.torchrun
options:
  hosts:
    description: Every node of the job (inventory hostname) with its node rank.
    type: dict
    required: true
  started:
    description: When the job was launched (epoch seconds on the controller); deadlines count from here. 0 is now.
    type: float
    default: 0
  once:
    description: One round of polls, returning every node's state (RV(nodes)) and no verdict.
    type: bool
    default: false
  interval:
    description: Seconds a round lasts (each poll waits up to this long for the unit to stop).
    type: float
    default: 2.0
  node_timeout:
    description: A node that does not answer for this many seconds is lost.
    type: float
    default: 20.0
  rdzv_timeout:
    description: Seconds for every node to join the rendezvous.
    type: float
    default: 600.0
  timeout:
    description: Seconds the whole job may take.
    type: float
    default: 86400.0
  progress_interval:
    description: Seconds between progress lines.
    type: float
    default: 10.0
  probe:
    description: The rendezvous endpoint (C(HOST:PORT)) that nodes which have not joined try to connect to.
    type: str
  on_interrupt:
    description:
      - What interrupting the play (Ctrl-C, SIGINT, or SIGTERM) while the watch runs does to the run. C(stop) stops
        it before the play ends, as root over each node's connection (become) - with O(slurm_job_id), C(scancel) of
        the job on O(slurm_host) (Slurm stops the job's step on every node); else C(systemctl stop --no-block) of the
        run's unit on every node. C(leave) leaves it running (C(torchrun_state=stopped) stops it later).
    type: str
    choices: [stop, leave]
    default: stop
  slurm_job_id:
    description: The run's Slurm job (C(torchrun_launcher=slurm)), cancelled when the play is interrupted.
    type: str
  slurm_host:
    description: The node that runs C(scancel) for O(slurm_job_id); default the node of rank 0.
    type: str
seealso:
  - module: aiinfra.gpu_cluster.torchrun_job
  - module: aiinfra.gpu_cluster.torchrun_report
"""

EXAMPLES = r"""
- name: Watch the run on every node
  aiinfra.gpu_cluster.torchrun_watch:
    run_id: "{{ run_id }}"
    hosts: {node-0: 0, node-1: 1}
    started: "{{ launched_at }}"
    rdzv_timeout: 120
    probe: 10.89.0.2:29400
  register: watch
  run_once: true
"""

RETURN = r"""
nodes:
  description:
    - Per node (inventory hostname), the last state seen, C(active), C(started), C(started_at), C(exit) (C(result),
      C(code), C(status), C(time)), C(lost), C(t) (when it last answered), C(log) (a digest of its log), C(probe) ...
  returned: always
  type: dict
lost:
  description: The nodes that stopped answering, by rank.
  returned: unless once
  type: list
  elements: str
times:
  description: C(running) - when every node was running and had joined the rendezvous, C(first_step) - when a step
    was first logged (null when never), C(ended) - when the watch ended (Unix times).
  returned: unless once
  type: dict
verdict:
  description:
    - The verdict over all nodes, C(status) (C(succeeded) or C(failed)), C(reason) (C(node), C(rendezvous),
      C(timeout)), C(failed) (the nodes, first cause first), C(message) and C(phases).
  returned: unless once
  type: dict
"""
