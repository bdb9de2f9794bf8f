#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: torchrun_plan
short_description: Plan a torchrun job once - check every setting, pick the run id, lay out the nodes, build each launch spec
version_added: 0.1.0
description:
  - Runs once for the whole job (C(run_once)), on the controller (an action plugin).
  - Checks the torchrun role's settings all at once (exactly one of script and module, the script exists on the
    controller, process counts, port, timeouts, restarts, node count, run id, job name, state, storage URIs) and fails
    with every problem named, each with the variable, its value and what it must be.
  - Makes the run id (the one given, a recovery's C(<first run id>-r<attempt>), or a new
    C(YYYYmmdd-HHMMSS-xxxxxx)) and a fresh rendezvous id, lays the play's nodes out by C(gpu_cluster_rank), and
    builds each node's launch spec (the C(LaunchSpec) of C(module_utils/torchrun/spec.py), which the node side reads
    back field by field).
  - Returns one record (RV(run_id), RV(layout), RV(specs), RV(node), ...) that the launch, watch, collect and report
    steps take whole.
author:
  - aiinfra platform team (@aiinfra)
attributes:
  check_mode:
    support: full
    description: Only plans; changes nothing anywhere.
  diff_mode:
    support: none
    description: Not applicable.
  action:
    support: full
    description: Runs on the controller.
options:
  settings:
    description:
      - The role's settings, every C(torchrun_*) variable (the prefix may be left out), as users typed them (the role
        passes C(torchrun_inputs)). List settings (C(script_args), C(docker_args), C(docker_mounts)) may be one
        string, split the way a shell splits it; numbers may be strings; C(env) a mapping or C(K=V) words.
      - C(secret_env) is read for its names only; its values are in no part of the result.
    type: dict
    required: true
  hosts:
    description:
      - The job's nodes (inventory hostnames). Their C(gpu_cluster_rank) and C(gpu_cluster_private_address) (else
        C(ansible_host)) come from their variables. Default the play's hosts (C(ansible_play_hosts_all)).
    type: list
    elements: str
  attempts:
    description: The earlier attempts of this job (a recovery), each with its C(run_id); the new run id follows the
      first's.
    type: list
    elements: dict
    default: []
seealso:
  - module: aiinfra.gpu_cluster.torchrun_launch
  - module: aiinfra.gpu_cluster.torchrun_watch
"""

EXAMPLES = r"""
- name: Plan the job
  aiinfra.gpu_cluster.torchrun_plan:
    settings:
      script: train.py
      script_args: --steps 300
      job_name: example
      workdir: /var/lib/aiinfra/torchrun/jobs/example
      bin: /opt/aiinfra/pytorch/bin/torchrun
  register: plan
  run_once: true
"""

RETURN = r"""
run_id:
  description: The run id.
  returned: success
  type: str
  sample: 20260101-120000-ab12cd
rdzv_id:
  description: A fresh rendezvous id for this launch.
  returned: success
  type: str
layout:
  description: The nodes by rank (C(host), C(rank), C(node_rank), C(rank_host), C(address)).
  returned: success
  type: list
  elements: dict
hosts:
  description: Each node's node rank (what M(aiinfra.gpu_cluster.torchrun_watch) takes as O(aiinfra.gpu_cluster.torchrun_watch#module:hosts)).
  returned: success
  type: dict
addresses:
  description: Each node's private address.
  returned: success
  type: dict
rdzv_endpoint:
  description: The rendezvous endpoint, C(ADDRESS:PORT) of node rank 0.
  returned: success
  type: str
specs:
  description: Each node's launch spec (host -> the LaunchSpec as a dict); empty when the state is C(stopped).
  returned: success
  type: dict
settings:
  description: The settings, checked and converted (no C(secret_env), only its names, C(secret_env_names)).
  returned: success
  type: dict
script:
  description: The script's absolute path on the controller (empty with a module).
  returned: success
  type: str
run_dir:
  description: The run directory on the controller (absolute).
  returned: success
  type: str
node:
  description: Where the run lives on every node, from C(RunDir) (C(run_dir), C(unit), C(uploader_unit), C(log),
    C(outputs), C(outputs_archive), C(checkpoints), C(active_states)).
  returned: success
  type: dict
"""
