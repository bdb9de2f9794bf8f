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
  - Runs as one task over every node of the job, like any task; the work happens on the controller (an action
    plugin). Each node's watcher polls its node over the task's connection with a small C(sh) script (a long poll
    on the run's unit, its exit record and the new part of its log, as M(aiinfra.gpu_cluster.torchrun_job_info)
    reports them, without starting Python on the node, so watching costs the nodes next to nothing), and shares
    what it saw through files in O(run_dir) on the controller.
  - Every watcher reaches the same verdict and the task ends on all nodes together as soon as every node finished
    with exit code 0, or any node failed, stopped answering for O(node_timeout) seconds, the rendezvous did not
    complete within O(rdzv_timeout) seconds (naming the nodes that did not join, with a TCP probe of the
    rendezvous endpoint from each of them), or the job ran past O(timeout).
  - The watcher of the node with the lowest rank prints progress (nodes up, rendezvous, ranks in, latest
    step and loss) every O(progress_interval) seconds and whenever a node changes phase.
  - It never fails; the verdict is returned for M(aiinfra.gpu_cluster.torchrun_report).
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
options:
  run_id:
    description: The run id.
    type: str
    required: true
  base_dir:
    description: As in M(aiinfra.gpu_cluster.torchrun_job).
    type: str
    default: /var/lib/aiinfra/torchrun
  run_dir:
    description: The run directory on the controller; the watchers share state in its C(.watch/<started>) folder.
    type: str
    required: true
  hosts:
    description: Every node of the job (inventory hostname) with its node rank.
    type: dict
    required: true
  started:
    description: When the job was launched (epoch seconds on the controller); deadlines count from here.
    type: float
    required: true
  launch:
    description: This node's M(aiinfra.gpu_cluster.torchrun_job) result.
    type: dict
    default: {}
  interval:
    description: Seconds between polls (each poll waits up to this long for the unit to stop).
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
seealso:
  - module: aiinfra.gpu_cluster.torchrun_job
  - module: aiinfra.gpu_cluster.torchrun_report
"""

EXAMPLES = r"""
- name: Watch the run on every node
  aiinfra.gpu_cluster.torchrun_watch:
    run_id: "{{ run_id }}"
    run_dir: "runs/{{ run_id }}"
    hosts: {node-0: 0, node-1: 1}
    started: "{{ launched_at }}"
    rdzv_timeout: 120
    probe: 10.89.0.2:29400
  register: watch
"""

RETURN = r"""
node:
  description: The last state seen of this node (C(active), C(exit), C(lost), C(log) digest, C(probe) ...).
  returned: always
  type: dict
phase:
  description: This node's phase, C(succeeded), C(failed), C(timeout), C(lost) or C(running).
  returned: always
  type: str
lost:
  description: Whether this node stopped answering.
  returned: always
  type: bool
verdict:
  description:
    - The verdict over all nodes, C(status) (C(succeeded) or C(failed)), C(reason) (C(node), C(rendezvous),
      C(timeout)), C(failed) (the nodes, first cause first), C(message) and C(phases).
  returned: always
  type: dict
"""
