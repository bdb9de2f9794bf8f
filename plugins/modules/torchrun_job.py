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

import glob  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import nofollow  # noqa: E402
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import (  # noqa: E402
    ACTIVE_STATES, UNIT_PREFIX, UPLOADER_USER, RunDir, SpecError, build_command, env_file_text, launch_script,
    poststop_script, uploader_argv, uploader_unit, validate_job_name, validate_user, with_hosts_block)

# what a launch spec must hold (the torchrun_plan filter builds it)
SPEC_REQUIRED = ("job_name", "workdir", "nnodes", "node_rank", "rdzv_host", "rdzv_port", "user", "timeout",
                 "stop_timeout")


def unit_show(module, unit):
    rc, out, err = module.run_command(["systemctl", "show", unit, "--property",
                                       "ActiveState,SubState,MainPID,LoadState,ControlGroup"])
    if rc != 0:
        module.fail_json(msg="systemctl show %s failed: %s" % (unit, err.strip()))
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    props["active"] = props.get("ActiveState") in ACTIVE_STATES
    return props


def running_runs(module):
    """Other torchrun units of ours that are running on this node."""
    rc, out, err = module.run_command(["systemctl", "list-units", "--all", "--plain", "--no-legend",
                                       "--type=service", UNIT_PREFIX + "*"])
    units = []
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0].startswith(UNIT_PREFIX) and len(fields) >= 3 and fields[2] in ACTIVE_STATES:
            units.append(fields[0])
    return units


def gpu_count(module):
    found = glob.glob("/proc/driver/nvidia/gpus/*")
    if found:
        return len(found)
    smi = module.get_bin_path("nvidia-smi")
    if smi:
        rc, out, err = module.run_command([smi, "-L"])
        if rc == 0:
            return len([ln for ln in out.splitlines() if ln.startswith("GPU ")])
    return 0


def find_ifname(module, address):
    if not address:
        return ""
    ip = module.get_bin_path("ip")
    if not ip:
        return ""
    rc, out, err = module.run_command([ip, "-o", "addr", "show"])
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("inet", "inet6") and fields[3].split("/")[0] == address:
            return fields[1].split("@")[0]
    return ""


def sync_script(module, path, content, owner):
    """Write the script when its content differs; True when it did (or would, in check mode). The working directory
    is the job's: the script is read and written there without following a link (see module_utils/nofollow)."""
    data = content.encode("utf-8")
    current = nofollow.read_file(path)
    if current is not None and hashlib.sha256(current).digest() == hashlib.sha256(data).digest():
        return False
    if module.check_mode:
        return True
    nofollow.make_dir(os.path.dirname(path), owner)
    nofollow.write_file(path, data, 0o644, owner)
    return True


def can_sudo(module, user):
    """Whether ``user`` may run anything with sudo on this node (``sudo -l -U``, as root)."""
    sudo = module.get_bin_path("sudo")
    if not sudo or user == "root":
        return user == "root"
    rc, out, err = module.run_command([sudo, "-n", "-l", "-U", user])
    return rc == 0 and "may run the following" in out and "not allowed" not in out


def name_nodes(module, path, rank_hosts):
    """Our block of rank names in the hosts file, written in place (a bind mount in containers)."""
    try:
        with open(path) as handle:
            current = handle.read()
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot read %s: %s" % (path, exc))
    wanted = with_hosts_block(current, rank_hosts)
    if wanted == current:
        return False
    if not module.check_mode:
        with open(path, "r+") as handle:
            handle.seek(0)
            handle.write(wanted)
            handle.truncate()
    return True


def start_uploader(module, spec, run, result):
    """The checkpoint uploader beside the job (spec's ``checkpoint``), started right after the job's unit: a left-over
    one of an earlier attempt of this run is stopped first (that is its last push). If it cannot start, the job is
    stopped and the launch fails: checkpoints would silently stay on the node."""
    unit = uploader_unit(spec["run_id"])
    result["uploader"] = unit
    if module.check_mode:
        return
    rc, out, err = module.run_command(uploader_argv(spec, run))
    if rc != 0:
        module.run_command(["systemctl", "stop", run.unit])
        module.fail_json(msg="could not start the checkpoint uploader %s (the job was stopped again): %s"
                             % (unit, (err or out).strip()), **result)


def stop_uploader(module, run_id):
    """Wait for an uploader of an earlier attempt of this run to finish (stopping it makes its last push)."""
    unit = uploader_unit(run_id)
    if unit_show(module, unit)["active"]:
        module.run_command(["systemctl", "stop", unit])
    module.run_command(["systemctl", "reset-failed", unit])


def rotate_log(path):
    if not nofollow.exists(path):
        return
    n = 1
    while nofollow.exists("%s.%d" % (path, n)):
        n += 1
    nofollow.rename(path, "%s.%d" % (path, n))


def leftover_pids(run_id):
    """Processes whose environment carries this run id (AIINFRA_RUN_ID): the job's, wherever they hide."""
    marker = ("AIINFRA_RUN_ID=%s" % run_id).encode()
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


def stop(module, params, run):
    unit = run.unit
    props = unit_show(module, unit)
    result = {"changed": False, "action": "absent", "unit": unit, "node_run_dir": run.path, "log_path": run.log,
              "killed_leftovers": []}
    if props["active"] or props.get("ActiveState") == "failed":
        result.update(changed=True, action="stopped")
        if module.check_mode:
            return result
        rc, out, err = module.run_command(["systemctl", "stop", unit])
        if rc != 0 and unit_show(module, unit)["active"]:
            module.fail_json(msg="could not stop %s: %s" % (unit, err.strip()), **result)
        module.run_command(["systemctl", "reset-failed", unit])
    if module.check_mode:
        return result
    docker = module.get_bin_path("docker")
    if docker:  # a container of the run (torchrun in Docker) that outlived its unit
        rc, out, err = module.run_command([docker, "ps", "-aq", "--filter",
                                           "label=aiinfra-torchrun-run=%s" % params["run_id"]])
        ids = out.split() if rc == 0 else []
        if ids:
            module.run_command([docker, "rm", "-f"] + ids)
            result.update(changed=True)
    deadline = time.time() + 5
    pids = leftover_pids(params["run_id"])
    while pids and time.time() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        result["killed_leftovers"] = sorted(set(result["killed_leftovers"]) | set(pids))
        time.sleep(0.2)
        pids = leftover_pids(params["run_id"])
    if pids:
        module.fail_json(msg="processes of run %s are still alive after SIGKILL: %s" % (
            params["run_id"], ", ".join(str(p) for p in pids)), **result)
    if result["killed_leftovers"]:
        result["changed"] = True
    result["exit"] = _read_json(run.exit)
    return result


def node_spec(module, params, run):
    """The launch spec as the plan made it, plus what only this launch knows (the run, its directories)."""
    spec = dict(params["spec"] or {})
    missing = [key for key in SPEC_REQUIRED if spec.get(key) in (None, "")]
    if missing:
        module.fail_json(msg="spec lacks %s: build it with the aiinfra.gpu_cluster.torchrun_plan filter"
                             % ", ".join(missing))
    try:
        validate_job_name(spec["job_name"])
        validate_user(spec["user"])
        for key in ("workdir", "checkpoint_dir"):
            if spec.get(key) and (not os.path.isabs(spec[key]) or "\n" in spec[key]):
                raise SpecError("%s %r must be an absolute path" % (key, spec[key]))
    except SpecError as exc:
        module.fail_json(msg=str(exc))
    spec.update(run_id=params["run_id"], rdzv_id=params["rdzv_id"] or params["run_id"], node_run_dir=run.path,
                log_dir=run.ranks, output_dir=run.outputs)
    if spec.get("docker"):
        spec["docker"] = dict(spec["docker"], name=run.unit[:-len(".service")])
    return spec


def start(module, params, run):
    unit = run.unit
    spec = node_spec(module, params, run)
    try:
        owner = pwd.getpwnam(spec["user"])
        spec.update(uid=owner.pw_uid, gid=owner.pw_gid, home=owner.pw_dir)
    except KeyError:
        if not module.check_mode:
            module.fail_json(msg="user %r does not exist on this node (the torchrun role makes torchrun_user when it "
                                 "is missing)" % spec["user"])
        owner = None  # check mode: the role would make it first
    secret_env = dict((str(k), "" if v is None else str(v)) for k, v in (params["secret_env"] or {}).items())
    try:
        secret_text = env_file_text(secret_env, docker=bool(spec.get("docker")))
    except SpecError as exc:
        module.fail_json(msg=str(exc))
    if spec.get("docker"):
        spec["secret_env_file"] = run.secret_env
    gpus = gpu_count(module)
    ifname = spec.get("socket_ifname") or find_ifname(module, spec.get("private_address"))
    try:
        built = build_command(spec, gpu_count=gpus, ifname=ifname)
    except SpecError as exc:
        module.fail_json(msg=str(exc))
    result = {"changed": False, "unit": unit, "node_run_dir": run.path, "log_path": run.log,
              "output_dir": run.outputs, "command": built["command"], "argv": built["argv"],
              "nproc_per_node": built["nproc_per_node"], "gpu_count": gpus, "socket_ifname": ifname}
    if owner is not None and can_sudo(module, spec["user"]):
        module.warn("the job's user %s can use sudo on this node: the training script is as good as root there "
                    "(leave torchrun_user at its default, aiinfra-job, a user without sudo)" % spec["user"])
    if spec.get("private_address") and not ifname:
        module.warn("no interface on this node holds %s; NCCL/Gloo choose their own (set torchrun_socket_ifname)"
                    % spec["private_address"])
    props = unit_show(module, unit)
    if props["active"]:  # attach: the running job keeps its script and names
        result.update(action="attached", started_at=_meta(run).get("started_at"))
        return result
    others = [u for u in running_runs(module) if u != unit]
    if others:
        module.fail_json(msg="this node is already running another torchrun job: %s. Attach to it with "
                             "torchrun_run_id=%s, or stop it with torchrun_state=stopped and that run id"
                             % (", ".join(others), others[0][len(UNIT_PREFIX):-len(".service")]), **result)
    if params["hosts_file"] and spec.get("rank_hosts"):
        result["hosts_changed"] = name_nodes(module, params["hosts_file"], spec["rank_hosts"])
    if spec.get("script") and params["script_content"] is not None:
        result["script_changed"] = sync_script(module, spec["script"], params["script_content"], owner)
    result["changed"] = bool(result.get("hosts_changed") or result.get("script_changed"))
    torchrun = spec.get("torchrun") or "torchrun"
    if spec.get("script") and not module.check_mode and not spec.get("docker") and not os.path.isfile(spec["script"]):
        module.fail_json(msg="the training script %s is not on this node" % spec["script"], **result)
    if not spec.get("docker") and not os.access(torchrun, os.X_OK) and not module.get_bin_path(torchrun):
        module.fail_json(msg="torchrun is not at %s on this node: install PyTorch there (the pytorch role) or set "
                             "torchrun_bin" % torchrun, **result)

    if os.path.exists(run.exit) and not params["restart_finished"]:
        result.update(action="finished", started_at=_meta(run).get("started_at"))
        return result
    result.update(changed=True, action="started")
    if module.check_mode:
        result["action"] = "check"
        return result

    try:
        started_at = prepare(module, params, spec, run, owner, built, secret_text)
    except (OSError, SpecError) as exc:
        result.pop("action")  # it did not start
        module.fail_json(msg="cannot prepare the run on this node: %s" % exc, **result)
    cmd = ["systemd-run", "--unit", unit, "--collect", "--quiet",
           "--description", "aiinfra.gpu_cluster torchrun job %s run %s" % (spec["job_name"], params["run_id"]),
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
    rc, out, err = module.run_command(cmd)
    if rc != 0:
        result.pop("action")  # it did not start
        module.fail_json(msg="systemd-run failed: %s" % (err.strip() or out.strip()), cmd=cmd, **result)
    if spec.get("checkpoint"):
        start_uploader(module, spec, run, result)
    result["started_at"] = started_at
    return result


def prepare(module, params, spec, run, owner, built, secret_text):
    """The run's files and directories: root's run directory and what root writes or runs there, the job's own
    directories given to its user; nothing under a directory the job can write is followed through a link."""
    root = pwd.getpwuid(0)
    for path in (spec["workdir"], spec.get("checkpoint_dir")):
        if path:
            nofollow.make_dir(path, owner)
    if spec.get("checkpoint"):
        # restored checkpoints of older releases arrived as root: the job rotates them
        nofollow.chown_tree(spec["checkpoint_dir"], owner)
        stop_uploader(module, params["run_id"])
    nofollow.make_dir(run.path, root)
    for path in run.job_dirs():
        nofollow.make_dir(path, owner)
    if spec.get("checkpoint"):
        try:
            uploader = pwd.getpwnam(spec["checkpoint"].get("user") or UPLOADER_USER)
        except KeyError:
            raise SpecError("the checkpoint uploader's user %s does not exist on this node (the torchrun role makes "
                            "it)" % (spec["checkpoint"].get("user") or UPLOADER_USER))
        nofollow.make_dir(run.uploader_dir, uploader)
    nofollow.unlink(run.exit)
    rotate_log(run.log)
    nofollow.write_file(run.secret_env, secret_text, 0o600, root)
    nofollow.write_file(run.launch, launch_script(spec, built), 0o700, root)
    nofollow.write_file(run.poststop, poststop_script(spec, run.exit), 0o700, root)
    started_at = time.time()
    nofollow.write_file(run.meta, json.dumps({"run_id": params["run_id"], "job_name": spec["job_name"],
                                              "node_rank": spec["node_rank"], "started_at": started_at,
                                              "user": spec["user"], "command": built["command"],
                                              "nproc_per_node": built["nproc_per_node"]}), 0o644, root)
    return started_at


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def _meta(run):
    return _read_json(run.meta) or {}


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
    params = module.params
    try:
        run = RunDir(params["base_dir"], params["run_id"])
    except SpecError as exc:
        module.fail_json(msg=str(exc))
    if not module.get_bin_path("systemd-run") and not module.check_mode:
        module.fail_json(msg="systemd-run is missing: the torchrun role needs systemd on the nodes")
    if params["state"] == "stopped":
        module.exit_json(**stop(module, params, run))
    module.exit_json(**start(module, params, run))


if __name__ == "__main__":
    main()
