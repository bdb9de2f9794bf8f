# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node side of the torchrun role: what runs on (or describes) one node of a job.

- :mod:`.layout`: :class:`RunDir`, a run's files and units on a node (the only place that names them), the shared
  names and validators;
- :mod:`.spec`: :class:`LaunchSpec`, one node's launch spec (made once by the ``torchrun_plan`` action);
- :mod:`.command`: the node's exact command, its launch, post-stop and uploader scripts;
- :mod:`.job`: :class:`JobManager`, start, stop and collect a run on a node (``torchrun_job`` and the one-round
  launch of ``torchrun_launch`` both drive it).

Controller-only code (plan, poll, log parsing, verdict, report) lives in ``plugin_utils/torchrun/``. Everything is
re-exported here: ``module_utils.torchrun.RunDir`` and friends keep working.
"""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.layout import (  # noqa: F401
    ACTIVE_STATES, DEFAULT_BASE_DIR, ENV_NAME_RE, JOB_NAME_RE, JOB_USER, RUN_ID_RE, SECRET_NAME_PATTERNS,
    SPOT_NOTICE, STORAGE_ENV_DIR, UNIT_PREFIX, UPLOADER_PREFIX, UPLOADER_USER, USER_RE, RunDir, SpecError, exit_code,
    secret_looking, storage_env_path, unit_name, uploader_unit, validate_job_name, validate_run_id, validate_user)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.command import (  # noqa: F401
    HOSTS_BEGIN, HOSTS_END, build_command, docker_argv, env_file_text, hosts_block, job_dirs, job_env,
    launch_script, poststop_script, resolve_nproc, torchrun_argv, uploader_argv, with_hosts_block)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.spec import LaunchSpec  # noqa: F401
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.job import (  # noqa: F401
    JobError, JobManager, Node)
