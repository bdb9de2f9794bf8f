# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A torchrun run's place on a node: the names and validators every step shares, and :class:`RunDir`, the one place
that spells out a run's files (``<base>/runs/<run id>/``) and its systemd units."""

from __future__ import annotations

import fnmatch
import os
import re

UNIT_PREFIX = "aiinfra-torchrun-"
# the checkpoint uploader's unit (not under UNIT_PREFIX: it is no torchrun run of its own)
UPLOADER_PREFIX = "aiinfra-ckpt-"
# root-only: the object store's credentials for the uploader (a systemd EnvironmentFile, mode 0600)
STORAGE_ENV_DIR = "/etc/aiinfra/torchrun"
# systemd ActiveState values of a unit that is still running
# the spot notice a node's watcher records (roles/gpu_cluster/files/aiinfra_spot_notice.py, root's, 0644): the
# run's watch reads it and names the node preempted
SPOT_NOTICE = "/run/aiinfra/preempted.json"
ACTIVE_STATES = ("active", "activating", "deactivating", "reloading")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
JOB_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# a POSIX login name as useradd takes it
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,30}[$]?")
DEFAULT_BASE_DIR = "/var/lib/aiinfra/torchrun"
# the system users the torchrun role makes: the job's (no sudo, no login shell) and the checkpoint uploader's
JOB_USER = "aiinfra-job"
UPLOADER_USER = "aiinfra-ckpt"
# torchrun_env names that look like secrets: those go in torchrun_secret_env (a root-only environment file)
SECRET_NAME_PATTERNS = ("*TOKEN*", "*SECRET*", "*PASSWORD*", "*_KEY")


class SpecError(ValueError):
    """A launch spec that cannot work; the message says which setting and why."""


def validate_run_id(run_id):
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise SpecError("run id %r: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
                        % (run_id,))
    return run_id


def validate_job_name(name):
    if not isinstance(name, str) or not JOB_NAME_RE.fullmatch(name):
        raise SpecError("job name %r: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
                        % (name,))
    return name


def validate_user(user):
    if not isinstance(user, str) or not USER_RE.fullmatch(user):
        raise SpecError("user %r is not a valid user name (lowercase letters, digits, '_' and '-', at most 32)"
                        % (user,))
    return user


def secret_looking(name):
    """Whether an environment variable name looks like it holds a secret (*TOKEN*, *SECRET*, *PASSWORD*, *_KEY)."""
    return any(fnmatch.fnmatchcase(str(name).upper(), pattern) for pattern in SECRET_NAME_PATTERNS)


def unit_name(run_id):
    return "%s%s.service" % (UNIT_PREFIX, run_id)


def uploader_unit(run_id):
    return "%s%s.service" % (UPLOADER_PREFIX, run_id)


def container_label(run_id):
    return "aiinfra-torchrun-run=%s" % run_id


def storage_env_path(job_name):
    """The job's object-store credentials on a node, as the uploader's unit reads them (root only)."""
    return "%s/%s.storage.env" % (STORAGE_ENV_DIR, job_name)


class RunDir(object):
    """One run's files on a node: the one place that spells out the layout."""

    def __init__(self, base_dir, run_id):
        validate_run_id(run_id)
        self.run_id = run_id
        self.path = os.path.join(base_dir or DEFAULT_BASE_DIR, "runs", run_id)
        self.base_dir = base_dir or DEFAULT_BASE_DIR
        self.unit = unit_name(run_id)
        # the checkpoint uploader's unit, beside the job's
        self.uploader_unit = uploader_unit(run_id)
        # Docker mode: the job's container, and the label every container of the run carries
        self.container = self.unit[:-len(".service")]
        self.container_label = container_label(run_id)

    @property
    def log(self):
        """torchrun's output (agent and every worker, ``--tee``), appended by the unit."""
        return os.path.join(self.path, "torchrun.log")

    @property
    def exit(self):
        """How the unit ended (written by the post-stop script): result, code, status, time."""
        return os.path.join(self.path, "exit.json")

    @property
    def meta(self):
        """What was launched: run id, job, node rank, started_at, command, nproc_per_node."""
        return os.path.join(self.path, "meta.json")

    @property
    def launch(self):
        return os.path.join(self.path, "launch.sh")

    @property
    def poststop(self):
        return os.path.join(self.path, "poststop.sh")

    @property
    def secret_env(self):
        """torchrun_secret_env: root's only (0600); systemd (or docker's --env-file) reads it for the job."""
        return os.path.join(self.path, "job.env")

    @property
    def uploader_dir(self):
        """The checkpoint uploader's own directory (its user's): its report and its push manifest."""
        return os.path.join(self.path, "uploader")

    @property
    def checkpoints(self):
        """The checkpoint uploader's report (uploaded files, bytes, errors; ``final`` after its last push)."""
        return os.path.join(self.uploader_dir, "checkpoints.json")

    @property
    def push_manifest(self):
        """What the uploader stored (it starts from what the restore brought: those are not pushed back)."""
        return os.path.join(self.uploader_dir, "push-manifest.json")

    def root_files(self):
        """Everything root writes or runs in the run directory (none of it the job's)."""
        return [self.log, self.exit, self.meta, self.launch, self.poststop, self.secret_env]

    def job_dirs(self):
        """The run's directories the job writes (its own): the per-rank logs and its outputs."""
        return [self.ranks, self.outputs]

    @property
    def checkpoints_log(self):
        return os.path.join(self.path, "checkpoints.log")

    @property
    def outputs(self):
        """What the job writes for the controller (AIINFRA_OUTPUT_DIR): brought back into the run directory."""
        return os.path.join(self.path, "outputs")

    @property
    def outputs_archive(self):
        """The job's outputs packed for the controller (root's, in the run directory)."""
        return os.path.join(self.path, "outputs.tgz")

    @property
    def ranks(self):
        """torchrun's --log-dir (one directory per restart attempt and rank)."""
        return os.path.join(self.path, "ranks")


def exit_code(exit_info):
    """A number for how a unit ended: its exit status, 128+N for a signal, None if unknown."""
    if not exit_info:
        return None
    status = str(exit_info.get("status", ""))
    if status.isdigit():
        return int(status)
    signals = {"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "KILL": 9, "SEGV": 11, "PIPE": 13,
               "TERM": 15}
    if status.upper() in signals:
        return 128 + signals[status.upper()]
    return None
