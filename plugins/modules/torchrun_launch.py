#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: torchrun_launch
short_description: Start, stop, check or collect a planned torchrun job on every node in one parallel round
version_added: 0.1.0
description:
  - Runs once for the whole job (C(run_once)), on the controller (an action plugin), whatever Ansible's C(forks)
    are. Every node's part of the run starts at once, each over that node's own connection (made from its inventory
    variables as Ansible makes a task's connection, the same connections M(aiinfra.gpu_cluster.torchrun_watch)
    polls over), with the task's C(become). The job manager of M(aiinfra.gpu_cluster.torchrun_job) runs on each
    node - where the connection pipelines (C(ansible_pipelining), which the C(aiinfra.gpu_cluster.cluster)
    inventory sets), as one program on the node's Python's standard input (its module_utils and the node's
    arguments, so nothing of them on a command line or in a file; no AnsiballZ, no C(ansible.module_utils.basic)), else as
    that module, the way Ansible sends a module without pipelining.
  - The node's interpreter is C(ansible_python_interpreter) when the inventory names one, else the one Ansible
    discovered on the node earlier in the play, else the node's C(/usr/bin/python3) (or
    C(/usr/libexec/platform-python)).
  - Takes the plan record of M(aiinfra.gpu_cluster.torchrun_plan) whole (the run id, the rendezvous id, each node's
    launch spec, the script on the controller).
  - It never fails; a node that could not start (or stop) is in RV(failed_hosts), its reason in RV(nodes).
  - The rounds around a launch run plain C(sh) as the login user (no become, no Python on the node, as
    M(aiinfra.gpu_cluster.torchrun_watch) polls). O(state=checked) tells which nodes lack what the launch needs
    (O(prepared)), so that only those go through the node preparation tasks. O(state=collected) brings each node's
    whole log into O(dest) and says which nodes left outputs.
author:
  - aiinfra platform team (@aiinfra)
attributes:
  check_mode:
    support: full
    description: Each node returns the command it would run; nothing is written or started.
  diff_mode:
    support: none
    description: Not applicable.
  action:
    support: full
    description: Runs on the controller; the node side is M(aiinfra.gpu_cluster.torchrun_job).
  become:
    support: full
    description: The task's C(become) (and each node's C(ansible_become*) variables) apply to every node's launch.
options:
  plan:
    description: The plan record of M(aiinfra.gpu_cluster.torchrun_plan) (its C(run_id), C(rdzv_id), C(hosts),
      C(specs) and C(script) are used).
    type: dict
    required: true
  hosts:
    description: The nodes to launch on (default every node of the plan).
    type: list
    elements: str
  state:
    description:
      - C(started) starts (or attaches to) the run on every node; C(stopped) stops it on every node.
      - C(checked) looks on every node for what O(prepared) names (RV(unprepared)); nothing changes.
      - C(collected) brings each node's log of the run to C(DEST/<node>/torchrun.log) on the controller and says
        which nodes left outputs (RV(outputs)); nothing changes on the nodes.
    type: str
    choices: [started, stopped, checked, collected]
    default: started
  prepared:
    description: What a node needs before a launch (O(state=checked)); a node lacking any of it is in
      RV(unprepared).
    type: dict
    suboptions:
      user:
        description: A user that must exist (the job's user).
        type: str
      files:
        description: Files that must hold given content, as path -> the content's sha256 (the job's firewall rules).
        type: dict
      units:
        description: systemd units that must be active (the unit that loads the firewall rules).
        type: list
        elements: str
      executables:
        description: Programs that must be there and executable (TensorFlow's python).
        type: list
        elements: str
  dest:
    description: The run directory on the controller (O(state=collected)).
    type: path
  base_dir:
    description: Runs live on the nodes in C(BASE_DIR/runs/RUN_ID).
    type: path
    default: /var/lib/aiinfra/torchrun
  secret_env:
    description:
      - Environment for the job that must not be seen. It reaches each node's job only through a root-only file
        (mode 0600) in the run directory, never a command line, a result or a log.
    type: dict
    default: {}
  restart_finished:
    description: Start a run that already ran to its end again (see M(aiinfra.gpu_cluster.torchrun_job)).
    type: bool
    default: false
  hosts_file:
    description: Where every node's rank names are written (see M(aiinfra.gpu_cluster.torchrun_job)).
    type: path
    default: /etc/hosts
  timeout:
    description:
      - Seconds the round may take; a node that has not answered by then could not start. A relaunch waits for the
        checkpoint uploader of the run's earlier attempt to make its last push first.
    type: int
    default: 900
seealso:
  - module: aiinfra.gpu_cluster.torchrun_plan
  - module: aiinfra.gpu_cluster.torchrun_job
  - module: aiinfra.gpu_cluster.torchrun_watch
"""

EXAMPLES = r"""
- name: Start the run on every node at once
  aiinfra.gpu_cluster.torchrun_launch:
    plan: "{{ plan }}"
    secret_env: "{{ torchrun_secret_env }}"
  become: true
  register: launch
  run_once: true
"""

RETURN = r"""
nodes:
  description: Each node's result (M(aiinfra.gpu_cluster.torchrun_job)'s return values; C(msg) and C(failed) for
    a node that could not start, C(unreachable) when it could not be reached).
  returned: always
  type: dict
failed_hosts:
  description: The nodes that could not start (or stop), by node rank.
  returned: always
  type: list
  elements: str
started:
  description: When the round began (epoch seconds on the controller).
  returned: always
  type: float
ended:
  description: When every node had answered.
  returned: always
  type: float
unprepared:
  description: The nodes that lack something of O(prepared), or could not be checked (O(state=checked)); each
    node's RV(nodes) entry lists what it lacks in C(missing).
  returned: when O(state=checked)
  type: list
  elements: str
outputs:
  description: The nodes whose job left outputs, or whose output directory the login user cannot read
    (O(state=collected)); each node's RV(nodes) entry has C(log), where its log now is on the controller.
  returned: when O(state=collected)
  type: list
  elements: str
"""
