# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One node's launch spec: the contract between the plan (made once, on the controller, by the ``torchrun_plan``
action) and the node-side code (``torchrun_job``, the one-round launch). The plan builds a :class:`LaunchSpec` per
node and hands it on as a plain dict (:meth:`LaunchSpec.to_dict`); the node reads it back with
:meth:`LaunchSpec.from_dict`, which refuses a missing, empty or unknown field by name."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.layout import (
    JOB_USER, SpecError, validate_job_name, validate_user)


@dataclasses.dataclass
class LaunchSpec(object):
    """What one node needs to start its part of a job (the settings, checked; its place in the rendezvous)."""

    # the job and where it runs
    job_name: str
    workdir: str
    nnodes: str
    node_rank: int
    rdzv_host: str
    rdzv_port: int
    timeout: int
    stop_timeout: int
    user: str = JOB_USER
    checkpoint_dir: str = ""
    # what torchrun runs: exactly one of script (a path on the node) and module
    torchrun: str = "torchrun"
    script: Optional[str] = None
    module: Optional[str] = None
    script_args: List[str] = dataclasses.field(default_factory=list)
    nproc_per_node: str = "auto"
    cpu_nproc_per_node: int = 1
    # the rendezvous
    rdzv_is_host: bool = False
    rdzv_timeout: int = 0
    local_addr: str = ""
    private_address: str = ""
    rank_hosts: List[Dict[str, str]] = dataclasses.field(default_factory=list)
    max_restarts: int = 0
    # the job's environment (the secret one goes by name only: its values never enter a spec)
    env: Dict[str, str] = dataclasses.field(default_factory=dict)
    secret_env_names: List[str] = dataclasses.field(default_factory=list)
    nccl_debug: str = ""
    agent_log_level: str = "INFO"
    socket_ifname: str = ""
    # Docker mode (image, gpus, mounts, args, torchrun) and the checkpoint uploader, when configured
    docker: Optional[Dict[str, Any]] = None
    checkpoint: Optional[Dict[str, Any]] = None
    # the framework (torchrun_framework): pytorch runs torchrun; tensorflow runs `python SCRIPT` once per node with
    # TF_CONFIG (its workers listen on worker_port; python is the TensorFlow virtualenv's)
    framework: str = "pytorch"
    python: str = ""
    worker_port: int = 0
    # how the node's command starts: direct (a systemd unit, the one-round launch) or slurm (the step of one sbatch job
    # of every node; the node is only laid out, module_utils/torchrun/slurm.py)
    launcher: str = "direct"

    REQUIRED = ("job_name", "workdir", "nnodes", "node_rank", "rdzv_host", "rdzv_port", "user", "timeout",
                "stop_timeout")

    def __post_init__(self):
        missing = [name for name in self.REQUIRED if getattr(self, name) in (None, "")]
        if missing:
            raise SpecError("the launch spec lacks %s (the torchrun_plan action builds it)" % ", ".join(missing))
        validate_job_name(self.job_name)
        validate_user(self.user)
        if self.framework not in ("pytorch", "tensorflow"):
            raise SpecError("framework %r: the collection launches pytorch and tensorflow jobs" % (self.framework,))
        for name in ("workdir", "checkpoint_dir"):
            value = getattr(self, name)
            if value and (not os.path.isabs(value) or "\n" in value):
                raise SpecError("%s %r must be an absolute path" % (name, value))

    @classmethod
    def fields(cls):
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data):
        """The spec from its dict (a task argument); a missing, empty or unknown field is an error naming it."""
        if not isinstance(data, dict):
            raise SpecError("the launch spec must be a mapping (got %s)" % type(data).__name__)
        known = set(cls.fields())
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise SpecError("the launch spec has unknown fields: %s" % ", ".join(unknown))
        missing = [name for name in cls.REQUIRED if name not in data]
        if missing:
            raise SpecError("the launch spec lacks %s (the torchrun_plan action builds it)" % ", ".join(missing))
        return cls(**data)

    def to_dict(self):
        return dataclasses.asdict(self)
