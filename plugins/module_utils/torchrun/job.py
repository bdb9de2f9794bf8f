# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start, stop and collect one run on a node (the node side of ``torchrun_job`` and of the one-round launch).

:class:`JobManager` does the work; what it asks of the node goes through a :class:`Node` (run a command, find a
program, warn, check mode), which ``torchrun_job`` makes from its ``AnsibleModule`` and a test makes from a fake, so
everything up to the process boundary (``systemctl``, ``systemd-run``) runs the same in both. Every path and unit
comes from :class:`~.layout.RunDir`; every operation of root under a directory the job can write goes through
``module_utils/nofollow`` (no symbolic link is followed).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import signal
import time

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import nofollow
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.slurm import prepare as slurm_prepare
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.command import (
    build_command, env_file_text, launch_script, poststop_script, uploader_argv, with_hosts_block)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.layout import (
    ACTIVE_STATES, UNIT_PREFIX, UPLOADER_USER, RunDir, SpecError)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.spec import LaunchSpec


class JobError(Exception):
    """A step that failed on the node: ``msg`` says why, ``result`` is what is known so far (it goes in the task's
    result)."""

    def __init__(self, msg, **result):
        super(JobError, self).__init__(msg)
        self.msg = msg
        self.result = result


class Node(object):
    """What the job manager asks of the node: ``run(argv) -> (rc, out, err)``, ``bin_path(name)``, ``warn(msg)`` and
    ``check_mode``."""

    def __init__(self, run, bin_path, warn, check_mode=False):
        self.run = run
        self.bin_path = bin_path
        self.warn = warn
        self.check_mode = check_mode

    @classmethod
    def of_module(cls, module):
        return cls(module.run_command, module.get_bin_path, module.warn, module.check_mode)


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


class JobManager(object):
    """One run (``run_id``) under ``base_dir`` on this node."""

    def __init__(self, node, base_dir, run_id):
        self.node = node
        self.run_dir = RunDir(base_dir, run_id)
        self.run_id = run_id

    # -- the node ----------------------------------------------------------------------------------------------
    def unit_show(self, unit):
        rc, out, err = self.node.run(["systemctl", "show", unit, "--property",
                                      "ActiveState,SubState,MainPID,LoadState,ControlGroup"])
        if rc != 0:
            raise JobError("systemctl show %s failed: %s" % (unit, err.strip()))
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        props["active"] = props.get("ActiveState") in ACTIVE_STATES
        return props

    def running_runs(self):
        """Other torchrun units of ours that are running on this node."""
        rc, out, err = self.node.run(["systemctl", "list-units", "--all", "--plain", "--no-legend",
                                      "--type=service", UNIT_PREFIX + "*"])
        units = []
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0].startswith(UNIT_PREFIX) and len(fields) >= 3 and fields[2] in ACTIVE_STATES:
                units.append(fields[0])
        return units

    def gpu_count(self):
        found = glob.glob("/proc/driver/nvidia/gpus/*")
        if found:
            return len(found)
        smi = self.node.bin_path("nvidia-smi")
        if smi:
            rc, out, err = self.node.run([smi, "-L"])
            if rc == 0:
                return len([ln for ln in out.splitlines() if ln.startswith("GPU ")])
        return 0

    def find_ifname(self, address):
        ip = self.node.bin_path("ip") if address else None
        if not ip:
            return ""
        rc, out, err = self.node.run([ip, "-o", "addr", "show"])
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[2] in ("inet", "inet6") and fields[3].split("/")[0] == address:
                return fields[1].split("@")[0]
        return ""

    def can_sudo(self, user):
        """Whether ``user`` may run anything with sudo on this node (``sudo -l -U``, as root)."""
        sudo = self.node.bin_path("sudo")
        if not sudo or user == "root":
            return user == "root"
        rc, out, err = self.node.run([sudo, "-n", "-l", "-U", user])
        return rc == 0 and "may run the following" in out and "not allowed" not in out

    def sync_script(self, path, content, owner):
        """Write the script when its content differs; True when it did (or would, in check mode). The working
        directory is the job's: the script is read and written there without following a link."""
        data = content.encode("utf-8")
        current = nofollow.read_file(path)
        if current is not None and hashlib.sha256(current).digest() == hashlib.sha256(data).digest():
            return False
        if self.node.check_mode:
            return True
        nofollow.make_dir(os.path.dirname(path), owner)
        nofollow.write_file(path, data, 0o644, owner)
        return True

    def name_nodes(self, path, rank_hosts):
        """Our block of rank names in the hosts file, written in place (a bind mount in containers)."""
        try:
            with open(path) as handle:
                current = handle.read()
        except (IOError, OSError) as exc:
            raise JobError("cannot read %s: %s" % (path, exc))
        wanted = with_hosts_block(current, rank_hosts)
        if wanted == current:
            return False
        if not self.node.check_mode:
            with open(path, "r+") as handle:
                handle.seek(0)
                handle.write(wanted)
                handle.truncate()
        return True

    def leftover_pids(self):
        """Processes whose environment carries this run id (AIINFRA_RUN_ID): the job's, wherever they hide."""
        marker = ("AIINFRA_RUN_ID=%s" % self.run_id).encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % entry, "rb") as handle:
                    if marker in handle.read().split(b"\0"):
                        pids.append(int(entry))
            except (IOError, OSError):
                continue
        return pids

    # -- start ---------------------------------------------------------------------------------------------------
    def node_spec(self, spec, rdzv_id=None):
        """The launch spec as the plan made it (a :class:`LaunchSpec`, checked), plus what only this launch knows:
        the run and its directories (RunDir's)."""
        try:
            checked = LaunchSpec.from_dict(dict(spec or {}))
        except (SpecError, TypeError) as exc:
            raise JobError(str(exc))
        run = self.run_dir
        out = checked.to_dict()
        out.update(run_id=self.run_id, rdzv_id=rdzv_id or self.run_id, node_run_dir=run.path, log_dir=run.ranks,
                   output_dir=run.outputs)
        if out.get("docker"):
            out["docker"] = dict(out["docker"], name=run.container)
        return out

    def start(self, spec, rdzv_id=None, secret_env=None, script_content=None, restart_finished=False,
              hosts_file="/etc/hosts"):
        """Start (or attach to, or report again) this node's part of the run. Returns the task's result; raises
        :class:`JobError` when it cannot start."""
        run = self.run_dir
        check_mode = self.node.check_mode
        spec = self.node_spec(spec, rdzv_id)
        try:
            owner = pwd.getpwnam(spec["user"])
            spec.update(uid=owner.pw_uid, gid=owner.pw_gid, home=owner.pw_dir)
        except KeyError:
            if not check_mode:
                raise JobError("user %r does not exist on this node (the torchrun role makes torchrun_user when it "
                               "is missing)" % spec["user"])
            owner = None  # check mode: the role would make it first
        secret_env = dict((str(k), "" if v is None else str(v)) for k, v in (secret_env or {}).items())
        try:
            secret_text = env_file_text(secret_env, docker=bool(spec.get("docker")))
        except SpecError as exc:
            raise JobError(str(exc))
        if spec.get("docker"):
            spec["secret_env_file"] = run.secret_env
        gpus = self.gpu_count()
        ifname = spec.get("socket_ifname") or self.find_ifname(spec.get("private_address"))
        try:
            built = build_command(spec, gpu_count=gpus, ifname=ifname)
        except SpecError as exc:
            raise JobError(str(exc))
        result = {"changed": False, "unit": run.unit, "node_run_dir": run.path, "log_path": run.log,
                  "output_dir": run.outputs, "command": built["command"], "argv": built["argv"],
                  "nproc_per_node": built["nproc_per_node"], "gpu_count": gpus, "socket_ifname": ifname}
        if owner is not None and self.can_sudo(spec["user"]):
            self.node.warn("the job's user %s can use sudo on this node: the training script is as good as root "
                           "there (leave torchrun_user at its default, aiinfra-job, a user without sudo)" % spec["user"])
        if spec.get("private_address") and not ifname:
            self.node.warn("no interface on this node holds %s; NCCL/Gloo choose their own (set "
                           "torchrun_socket_ifname)" % spec["private_address"])
        if self.unit_show(run.unit)["active"]:  # attach: the running job keeps its script and names
            result.update(action="attached", started_at=self.meta().get("started_at"))
            return result
        others = [u for u in self.running_runs() if u != run.unit]
        if others:
            raise JobError("this node is already running another torchrun job: %s. Attach to it with "
                           "torchrun_run_id=%s, or stop it with torchrun_state=stopped and that run id"
                           % (", ".join(others), others[0][len(UNIT_PREFIX):-len(".service")]), **result)
        if hosts_file and spec.get("rank_hosts"):
            result["hosts_changed"] = self.name_nodes(hosts_file, spec["rank_hosts"])
        if spec.get("script") and script_content is not None:
            result["script_changed"] = self.sync_script(spec["script"], script_content, owner)
        result["changed"] = bool(result.get("hosts_changed") or result.get("script_changed"))
        torchrun = spec.get("torchrun") or "torchrun"
        if spec.get("script") and not check_mode and not spec.get("docker") and not os.path.isfile(spec["script"]):
            raise JobError("the training script %s is not on this node" % spec["script"], **result)
        if spec.get("framework") == "tensorflow":
            python = built["argv"][0]
            if not os.access(python, os.X_OK):
                raise JobError("TensorFlow is not installed on this node: no python at %s (add tensorflow to "
                               "gpu_cluster_frameworks and run configure.yml, or set torchrun_tf_python)" % python,
                               **result)
        elif not spec.get("docker") and not os.access(torchrun, os.X_OK) and not self.node.bin_path(torchrun):
            raise JobError("torchrun is not at %s on this node: install PyTorch there (the pytorch role) or set "
                           "torchrun_bin" % torchrun, **result)
        if spec.get("launcher") == "slurm":  # laid out for the Slurm job's step; nothing starts here
            return self.prepare_slurm(spec, owner, built, secret_env, restart_finished, result)
        if os.path.exists(run.exit) and not restart_finished:
            result.update(action="finished", started_at=self.meta().get("started_at"))
            return result
        result.update(changed=True, action="started")
        if check_mode:
            result["action"] = "check"
            return result
        try:
            started_at = self.prepare(spec, owner, built, secret_text)
        except (OSError, SpecError) as exc:
            result.pop("action")  # it did not start
            raise JobError("cannot prepare the run on this node: %s" % exc, **result)
        cmd = ["systemd-run", "--unit", run.unit, "--collect", "--quiet",
               "--description", "aiinfra.gpu_cluster torchrun job %s run %s" % (spec["job_name"], self.run_id),
               "-p", "KillMode=control-group",
               "-p", "RuntimeMaxSec=%d" % int(spec["timeout"]),
               "-p", "TimeoutStopSec=%d" % int(spec["stop_timeout"]),
               "-p", "WorkingDirectory=%s" % run.path,
               "-p", "StandardOutput=append:%s" % run.log,
               "-p", "StandardError=append:%s" % run.log,
               "-p", "ExecStopPost=/bin/sh %s" % run.poststop]
        if secret_env and not spec.get("docker"):
            cmd += ["-p", "EnvironmentFile=%s" % run.secret_env]
        cmd += ["/bin/sh", run.launch]
        rc, out, err = self.node.run(cmd)
        if rc != 0:
            result.pop("action")  # it did not start
            raise JobError("systemd-run failed: %s" % (err.strip() or out.strip()), cmd=cmd, **result)
        if spec.get("checkpoint"):
            self.start_uploader(spec, result)
        result["started_at"] = started_at
        return result

    def prepare_slurm(self, spec, owner, built, secret_env, restart_finished, result):
        """torchrun_launcher=slurm: the run laid out for the Slurm step (module_utils/torchrun/slurm.py)."""
        try:
            action = slurm_prepare(self, spec, owner, built, secret_env, restart_finished)
        except (OSError, SpecError) as exc:
            raise JobError("cannot prepare the run on this node: %s" % exc, **result)
        result.update(action=action, changed=action != "finished", launcher="slurm",
                      uid=owner.pw_uid if owner is not None else None)
        if action == "finished":
            result["started_at"] = self.meta().get("started_at")
        return result

    def prepare(self, spec, owner, built, secret_text):
        """The run's files and directories: root's run directory and what root writes or runs there, the job's own
        directories given to its user; nothing under a directory the job can write is followed through a link."""
        run = self.run_dir
        root = pwd.getpwuid(0)
        for path in (spec["workdir"], spec.get("checkpoint_dir")):
            if path:
                nofollow.make_dir(path, owner)
        if spec.get("checkpoint"):
            # restored checkpoints of older releases arrived as root: the job rotates them
            nofollow.chown_tree(spec["checkpoint_dir"], owner)
            self.stop_uploader()
        nofollow.make_dir(run.path, root)
        for path in run.job_dirs():
            nofollow.make_dir(path, owner)
        if spec.get("checkpoint"):
            try:
                uploader = pwd.getpwnam(spec["checkpoint"].get("user") or UPLOADER_USER)
            except KeyError:
                raise SpecError("the checkpoint uploader's user %s does not exist on this node (the torchrun role "
                                "makes it)" % (spec["checkpoint"].get("user") or UPLOADER_USER))
            nofollow.make_dir(run.uploader_dir, uploader)
        nofollow.unlink(run.exit)
        self.rotate_log()
        nofollow.write_file(run.secret_env, secret_text, 0o600, root)
        nofollow.write_file(run.launch, launch_script(spec, built), 0o700, root)
        nofollow.write_file(run.poststop, poststop_script(spec, run.exit), 0o700, root)
        started_at = time.time()
        nofollow.write_file(run.meta, json.dumps({"run_id": self.run_id, "job_name": spec["job_name"],
                                                  "node_rank": spec["node_rank"], "started_at": started_at,
                                                  "user": spec["user"], "command": built["command"],
                                                  "nproc_per_node": built["nproc_per_node"]}), 0o644, root)
        return started_at

    def rotate_log(self):
        path = self.run_dir.log
        if not nofollow.exists(path):
            return
        n = 1
        while nofollow.exists("%s.%d" % (path, n)):
            n += 1
        nofollow.rename(path, "%s.%d" % (path, n))

    def start_uploader(self, spec, result):
        """The checkpoint uploader beside the job (spec's ``checkpoint``), started right after the job's unit. If it
        cannot start, the job is stopped and the launch fails: checkpoints would silently stay on the node."""
        run = self.run_dir
        result["uploader"] = run.uploader_unit
        if self.node.check_mode:
            return
        rc, out, err = self.node.run(uploader_argv(spec, run))
        if rc != 0:
            self.node.run(["systemctl", "stop", run.unit])
            raise JobError("could not start the checkpoint uploader %s (the job was stopped again): %s"
                           % (run.uploader_unit, (err or out).strip()), **result)

    def stop_uploader(self):
        """Wait for an uploader of an earlier attempt of this run to finish (stopping it makes its last push)."""
        unit = self.run_dir.uploader_unit
        if self.unit_show(unit)["active"]:
            self.node.run(["systemctl", "stop", unit])
        self.node.run(["systemctl", "reset-failed", unit])

    # -- stop ----------------------------------------------------------------------------------------------------
    def stop(self):
        """Stop the run's unit, then make sure no process (and no container) of the run is left; idempotent."""
        run = self.run_dir
        props = self.unit_show(run.unit)
        result = {"changed": False, "action": "absent", "unit": run.unit, "node_run_dir": run.path,
                  "log_path": run.log, "killed_leftovers": []}
        if props["active"] or props.get("ActiveState") == "failed":
            result.update(changed=True, action="stopped")
            if self.node.check_mode:
                return result
            rc, out, err = self.node.run(["systemctl", "stop", run.unit])
            if rc != 0 and self.unit_show(run.unit)["active"]:
                raise JobError("could not stop %s: %s" % (run.unit, err.strip()), **result)
            self.node.run(["systemctl", "reset-failed", run.unit])
        if self.node.check_mode:
            return result
        docker = self.node.bin_path("docker")
        if docker:  # a container of the run (torchrun in Docker) that outlived its unit
            rc, out, err = self.node.run([docker, "ps", "-aq", "--filter", "label=%s" % run.container_label])
            ids = out.split() if rc == 0 else []
            if ids:
                self.node.run([docker, "rm", "-f"] + ids)
                result.update(changed=True)
        deadline = time.time() + 5
        pids = self.leftover_pids()
        while pids and time.time() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            result["killed_leftovers"] = sorted(set(result["killed_leftovers"]) | set(pids))
            time.sleep(0.2)
            pids = self.leftover_pids()
        if pids:
            raise JobError("processes of run %s are still alive after SIGKILL: %s" % (
                self.run_id, ", ".join(str(p) for p in pids)), **result)
        if result["killed_leftovers"]:
            result["changed"] = True
        result["exit"] = _read_json(run.exit)
        return result

    # -- collect -------------------------------------------------------------------------------------------------
    def meta(self):
        return _read_json(self.run_dir.meta) or {}

    def collect(self):
        """What the run left on this node: its state, exit and launch records, where its log and outputs are."""
        run = self.run_dir
        props = self.unit_show(run.unit)
        return {"changed": False, "unit": run.unit, "active": props["active"],
                "unit_state": props.get("ActiveState") or "unknown", "exit": _read_json(run.exit),
                "meta": _read_json(run.meta), "node_run_dir": run.path, "log_path": run.log,
                "output_dir": run.outputs, "outputs_archive": run.outputs_archive,
                "log_size": nofollow.size(run.log)}
