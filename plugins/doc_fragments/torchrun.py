# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The options that name a torchrun run on the nodes (torchrun_job, torchrun_watch).
    DOCUMENTATION = r"""
options:
  run_id:
    description:
      - The run id, the same on every node of the job. Names the systemd unit (C(aiinfra-torchrun-RUN_ID.service))
        and the run directory.
      - 1-64 letters, digits, C(.), C(_) or C(-), starting with a letter or digit.
    type: str
    required: true
  base_dir:
    description:
      - Runs live on the nodes in C(BASE_DIR/runs/RUN_ID) (C(torchrun.log), the exit record C(exit.json), the launch
        record C(meta.json), the launch and post-stop scripts, per-rank logs).
    type: path
    default: /var/lib/aiinfra/torchrun
"""
