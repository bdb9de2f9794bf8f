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
  - Works out the node's share at run time, the number of GPUs (for O(nproc_per_node=auto)) and the network
    interface that holds O(private_address) (for C(NCCL_SOCKET_IFNAME) and C(GLOO_SOCKET_IFNAME)).
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
options:
  run_id:
    description: The run id. Names the unit and the run directory; the same on every node of the job.
    type: str
    required: true
  state:
    description:
      - C(started) starts (or attaches to) the run on this node.
      - C(stopped) stops the run's unit, then makes sure no process of the run is left (and no container, with
        O(docker_image)); idempotent.
    type: str
    choices: [started, stopped]
    default: started
  job_name:
    description: The job this run belongs to (recorded with the run; the torchrun role names directories by it).
    type: str
    default: job
  base_dir:
    description: Runs live in C(BASE_DIR/runs/RUN_ID) (launch script, log, exit record).
    type: path
    default: /var/lib/aiinfra/torchrun
  workdir:
    description: The job's working directory (created, owned by O(user)). Required with O(state=started).
    type: path
  checkpoint_dir:
    description: Created (owned by O(user)) and exported to the job as C(AIINFRA_CHECKPOINT_DIR).
    type: path
  torchrun:
    description: Path of the C(torchrun) executable on the node.
    type: str
    default: torchrun
  script:
    description: The training script (a path on the node, usually synced into O(workdir)). Exclusive with O(module).
    type: str
  script_content:
    description:
      - The script's content (read on the controller). When given, O(script) is written with it (owned by O(user))
        whenever it differs, as part of the launch, so a launch is a single round trip to each node.
      - For a code tree larger than one file, install it on the nodes (O(module)) or in an image (O(docker_image)).
    type: str
  module:
    description: A Python module already installed on the node, run as C(torchrun -m MODULE). Exclusive with O(script).
    type: str
  script_args:
    description: Arguments after the script or module.
    type: list
    elements: str
    default: []
  nnodes:
    description: Required with O(state=started). The number of nodes, or an elastic C(MIN:MAX).
    type: str
  node_rank:
    description: Required with O(state=started). This node's rank in the job (0 is the node that hosts the rendezvous).
    type: int
  nproc_per_node:
    description: Processes on this node; C(auto) means one per GPU, or O(cpu_nproc_per_node) without GPUs.
    type: str
    default: auto
  cpu_nproc_per_node:
    description: Processes on a node without GPUs when O(nproc_per_node=auto).
    type: int
    default: 1
  rdzv_host:
    description: Required with O(state=started). The rendezvous address (the private address of the node of rank 0).
    type: str
  rdzv_port:
    description: The rendezvous port on O(rdzv_host).
    type: int
    default: 29400
  rdzv_id:
    description: The rendezvous id (fresh for every launch); defaults to O(run_id).
    type: str
  rdzv_is_host:
    description: Whether this node hosts the rendezvous store (the node of rank 0).
    type: bool
    default: false
  rdzv_timeout:
    description: Seconds torchrun waits for every node to join (its C(join_timeout)).
    type: int
    default: 600
  local_addr:
    description:
      - The name this node's torchrun agent goes by (C(--local-addr)). torchrun orders nodes by it, and
        the first one serves the workers' store under it, so it must resolve on every node.
    type: str
  max_restarts:
    description: How many times torchrun restarts the worker group after a failure.
    type: int
    default: 0
  monitor_interval:
    description: Seconds between torchrun's checks of its workers (torchrun's default when unset).
    type: float
  env:
    description: Extra environment for the job; wins over the variables this module sets.
    type: dict
    default: {}
  nccl_debug:
    description: C(NCCL_DEBUG) for the job (e.g. C(INFO), C(WARN)); unset when empty.
    type: str
    default: ""
  agent_log_level:
    description: C(LOGLEVEL) of the torchrun agent. C(INFO) logs the rendezvous steps the watcher reads.
    type: str
    default: INFO
  socket_ifname:
    description: The interface for NCCL and Gloo; empty means the one that holds O(private_address).
    type: str
    default: ""
  private_address:
    description: This node's private address (to find O(socket_ifname)).
    type: str
    default: ""
  timeout:
    description: Seconds the unit may run (C(RuntimeMaxSec)); then systemd stops it and every worker.
    type: int
    default: 86400
  stop_timeout:
    description: Seconds between SIGTERM and SIGKILL when the unit is stopped (C(TimeoutStopSec)).
    type: int
    default: 15
  user:
    description: The user the job runs as (owns O(workdir) and O(checkpoint_dir)).
    type: str
    default: root
  restart_finished:
    description:
      - What to do when this run id already ran to its end on this node. C(false) leaves it (the result is
        reported again); C(true) starts it again (the old log is kept as C(torchrun.log.N)).
    type: bool
    default: false
  docker_image:
    description:
      - Run torchrun inside this image (C(docker run --network host --ipc host --init), O(workdir) and the run
        directory mounted). Empty runs torchrun on the host.
    type: str
    default: ""
  docker_gpus:
    description: C(--gpus) for the container; C(auto) is C(all) on a node with GPUs, none otherwise.
    type: str
    default: auto
  docker_mounts:
    description: Extra C(-v SRC:DEST[:OPTIONS]) mounts.
    type: list
    elements: str
    default: []
  docker_args:
    description: Extra C(docker run) arguments.
    type: list
    elements: str
    default: []
  docker_torchrun:
    description: The C(torchrun) executable inside the image.
    type: str
    default: torchrun
  hosts_file:
    description:
      - Where O(rank_hosts) are written as a managed block (marked C(aiinfra.gpu_cluster torchrun node names)), so that
        every node resolves every other node's rendezvous name (O(local_addr)). Empty leaves it alone.
      - Written in place (not replaced), as C(/etc/hosts) is a bind mount in containers.
    type: path
    default: /etc/hosts
  rank_hosts:
    description:
      - The nodes' rendezvous names (C(rank_host), or C(name)) and C(address), written to O(hosts_file) and added to
        a container's C(/etc/hosts) with O(docker_image).
    type: list
    elements: dict
    default: []
notes:
  - Needs systemd (C(systemd-run)) and root (use C(become)).
seealso:
  - module: aiinfra.gpu_cluster.torchrun_job_info
  - module: aiinfra.gpu_cluster.torchrun_watch
"""

EXAMPLES = r"""
- name: Start rank 1 of a two-node job
  aiinfra.gpu_cluster.torchrun_job:
    run_id: 20260101-120000-ab12cd
    job_name: example
    workdir: /var/lib/aiinfra/torchrun/jobs/example
    torchrun: /opt/aiinfra/pytorch/bin/torchrun
    script: /var/lib/aiinfra/torchrun/jobs/example/train_example.py
    script_args: [--steps, "300"]
    nnodes: "2"
    node_rank: 1
    rdzv_host: 10.89.0.2
    private_address: 10.89.0.3
    user: gpuadmin
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
  description: Whether O(script) was (or, in check mode, would be) written from O(script_content).
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
run_dir:
  description: The run directory on the node.
  returned: always
  type: str
log_path:
  description: The node's log of the run.
  returned: always
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

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import (  # noqa: E402
    UNIT_PREFIX, SpecError, build_command, launch_script, poststop_script, unit_name, validate_run_id,
    with_hosts_block)


def run_paths(base_dir, run_id):
    run_dir = os.path.join(base_dir, "runs", run_id)
    return {"run_dir": run_dir, "log": os.path.join(run_dir, "torchrun.log"),
            "exit": os.path.join(run_dir, "exit.json"), "meta": os.path.join(run_dir, "meta.json"),
            "launch": os.path.join(run_dir, "launch.sh"), "poststop": os.path.join(run_dir, "poststop.sh"),
            "ranks": os.path.join(run_dir, "ranks")}


def unit_show(module, unit):
    rc, out, err = module.run_command(["systemctl", "show", unit, "--property",
                                       "ActiveState,SubState,MainPID,LoadState,ControlGroup"])
    if rc != 0:
        module.fail_json(msg="systemctl show %s failed: %s" % (unit, err.strip()))
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    props["active"] = props.get("ActiveState") in ("active", "activating", "deactivating", "reloading")
    return props


def running_runs(module):
    """Other torchrun units of ours that are running on this node."""
    rc, out, err = module.run_command(["systemctl", "list-units", "--all", "--plain", "--no-legend",
                                       "--type=service", UNIT_PREFIX + "*"])
    units = []
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0].startswith(UNIT_PREFIX) and len(fields) >= 3 and fields[2] in (
                "active", "activating", "deactivating", "reloading"):
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


def make_dir(path, owner):
    if not os.path.isdir(path):
        os.makedirs(path)
    os.chown(path, owner.pw_uid, owner.pw_gid)


def write(path, text, mode=0o644):
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def sync_script(module, path, content, owner):
    """Write the script when its content differs; True when it did (or would, in check mode)."""
    data = content.encode("utf-8")
    try:
        with open(path, "rb") as handle:
            if hashlib.sha256(handle.read()).digest() == hashlib.sha256(data).digest():
                return False
    except (IOError, OSError):
        pass
    if module.check_mode:
        return True
    make_dir(os.path.dirname(path), owner)
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.chown(tmp, owner.pw_uid, owner.pw_gid)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
    return True


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


def rotate_log(path):
    if not os.path.exists(path):
        return
    n = 1
    while os.path.exists("%s.%d" % (path, n)):
        n += 1
    os.rename(path, "%s.%d" % (path, n))


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


def stop(module, params, paths, unit):
    props = unit_show(module, unit)
    result = {"changed": False, "action": "absent", "unit": unit, "run_dir": paths["run_dir"],
              "log_path": paths["log"], "killed_leftovers": []}
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
    if params["docker_image"]:
        docker = module.get_bin_path("docker")
        if docker:
            rc, out, err = module.run_command([docker, "ps", "-aq", "--filter",
                                               "label=aiinfra-torchrun-run=%s" % params["run_id"]])
            ids = out.split()
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
    result["exit"] = _read_json(paths["exit"])
    return result


def spec_from(params, paths):
    spec = dict((k, params[k]) for k in (
        "run_id", "job_name", "workdir", "checkpoint_dir", "torchrun", "script", "module", "script_args", "nnodes",
        "node_rank", "nproc_per_node", "cpu_nproc_per_node", "rdzv_host", "rdzv_port", "rdzv_id", "rdzv_is_host",
        "rdzv_timeout", "local_addr", "max_restarts", "monitor_interval", "env", "nccl_debug", "agent_log_level",
        "rank_hosts"))
    spec["run_dir"] = paths["run_dir"]
    spec["log_dir"] = paths["ranks"]
    if params["docker_image"]:
        spec["docker"] = {"image": params["docker_image"], "gpus": params["docker_gpus"],
                          "mounts": params["docker_mounts"], "args": params["docker_args"],
                          "torchrun": params["docker_torchrun"], "name": unit_name(params["run_id"])[:-8]}
    return spec


def start(module, params, paths, unit):
    try:
        owner = pwd.getpwnam(params["user"])
    except KeyError:
        module.fail_json(msg="user %r does not exist on this node" % params["user"])
    gpus = gpu_count(module)
    ifname = params["socket_ifname"] or find_ifname(module, params["private_address"])
    spec = spec_from(params, paths)
    try:
        built = build_command(spec, gpu_count=gpus, ifname=ifname)
    except SpecError as exc:
        module.fail_json(msg=str(exc))
    result = {"changed": False, "unit": unit, "run_dir": paths["run_dir"], "log_path": paths["log"],
              "command": built["command"], "argv": built["argv"], "nproc_per_node": built["nproc_per_node"],
              "gpu_count": gpus, "socket_ifname": ifname}
    if params["private_address"] and not ifname and not params["socket_ifname"]:
        module.warn("no interface on this node holds %s; NCCL/Gloo choose their own (set torchrun_socket_ifname)"
                    % params["private_address"])
    props = unit_show(module, unit)
    if props["active"]:  # attach: the running job keeps its script and names
        result.update(action="attached", started_at=_meta(paths).get("started_at"))
        return result
    others = [u for u in running_runs(module) if u != unit]
    if others:
        module.fail_json(msg="this node is already running another torchrun job: %s. Attach to it with "
                             "torchrun_run_id=%s, or stop it with torchrun_state=stopped and that run id"
                             % (", ".join(others), others[0][len(UNIT_PREFIX):-len(".service")]), **result)
    if params["hosts_file"] and params["rank_hosts"]:
        result["hosts_changed"] = name_nodes(module, params["hosts_file"], params["rank_hosts"])
    if params["script"] and params["script_content"] is not None:
        result["script_changed"] = sync_script(module, params["script"], params["script_content"], owner)
    result["changed"] = bool(result.get("hosts_changed") or result.get("script_changed"))
    if params["script"] and not module.check_mode and not params["docker_image"] \
            and not os.path.isfile(params["script"]):
        module.fail_json(msg="the training script %s is not on this node" % params["script"], **result)
    if not params["docker_image"] and not os.access(params["torchrun"], os.X_OK) \
            and not module.get_bin_path(params["torchrun"]):
        module.fail_json(msg="torchrun is not at %s on this node: install PyTorch there (the pytorch role) or set "
                             "torchrun_bin" % params["torchrun"], **result)

    if os.path.exists(paths["exit"]) and not params["restart_finished"]:
        result.update(action="finished", started_at=_meta(paths).get("started_at"))
        return result
    result.update(changed=True, action="started")
    if module.check_mode:
        result["action"] = "check"
        return result

    for path in (params["workdir"], params["checkpoint_dir"]):
        if path:
            make_dir(path, owner)
    if not os.path.isdir(paths["run_dir"]):
        os.makedirs(paths["run_dir"])
    make_dir(paths["run_dir"], owner)
    make_dir(paths["ranks"], owner)
    if os.path.exists(paths["exit"]):
        os.unlink(paths["exit"])
    rotate_log(paths["log"])
    write(paths["launch"], launch_script(spec, built), 0o755)
    write(paths["poststop"], poststop_script(spec, paths["exit"]), 0o755)
    started_at = time.time()
    write(paths["meta"], json.dumps({"run_id": params["run_id"], "job_name": params["job_name"],
                                     "node_rank": params["node_rank"], "started_at": started_at,
                                     "command": built["command"], "nproc_per_node": built["nproc_per_node"]}))
    cmd = ["systemd-run", "--unit", unit, "--collect", "--quiet",
           "--description", "aiinfra.gpu_cluster torchrun job %s run %s" % (params["job_name"], params["run_id"]),
           "-p", "KillMode=control-group",
           "-p", "RuntimeMaxSec=%d" % params["timeout"],
           "-p", "TimeoutStopSec=%d" % params["stop_timeout"],
           "-p", "User=%s" % params["user"],
           "-p", "WorkingDirectory=%s" % params["workdir"],
           "-p", "StandardOutput=append:%s" % paths["log"],
           "-p", "StandardError=append:%s" % paths["log"],
           "-p", "ExecStopPost=+/bin/sh %s" % paths["poststop"],
           "/bin/sh", paths["launch"]]
    rc, out, err = module.run_command(cmd)
    if rc != 0:
        module.fail_json(msg="systemd-run failed: %s" % (err.strip() or out.strip()), cmd=cmd, **result)
    result["started_at"] = started_at
    return result


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def _meta(paths):
    return _read_json(paths["meta"]) or {}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_id=dict(type="str", required=True),
            state=dict(type="str", choices=["started", "stopped"], default="started"),
            job_name=dict(type="str", default="job"),
            base_dir=dict(type="path", default="/var/lib/aiinfra/torchrun"),
            workdir=dict(type="path"),
            checkpoint_dir=dict(type="path"),
            torchrun=dict(type="str", default="torchrun"),
            script=dict(type="str"),
            script_content=dict(type="str"),
            hosts_file=dict(type="path", default="/etc/hosts"),
            module=dict(type="str"),
            script_args=dict(type="list", elements="str", default=[]),
            nnodes=dict(type="str"),
            node_rank=dict(type="int"),
            nproc_per_node=dict(type="str", default="auto"),
            cpu_nproc_per_node=dict(type="int", default=1),
            rdzv_host=dict(type="str"),
            rdzv_port=dict(type="int", default=29400),
            rdzv_id=dict(type="str"),
            rdzv_is_host=dict(type="bool", default=False),
            rdzv_timeout=dict(type="int", default=600),
            local_addr=dict(type="str"),
            max_restarts=dict(type="int", default=0),
            monitor_interval=dict(type="float"),
            env=dict(type="dict", default={}),
            nccl_debug=dict(type="str", default=""),
            agent_log_level=dict(type="str", default="INFO"),
            socket_ifname=dict(type="str", default=""),
            private_address=dict(type="str", default=""),
            timeout=dict(type="int", default=86400),
            stop_timeout=dict(type="int", default=15),
            user=dict(type="str", default="root"),
            restart_finished=dict(type="bool", default=False),
            docker_image=dict(type="str", default=""),
            docker_gpus=dict(type="str", default="auto"),
            docker_mounts=dict(type="list", elements="str", default=[]),
            docker_args=dict(type="list", elements="str", default=[]),
            docker_torchrun=dict(type="str", default="torchrun"),
            rank_hosts=dict(type="list", elements="dict", default=[]),
        ),
        mutually_exclusive=[("script", "module")],
        required_if=[("state", "started", ("workdir", "nnodes", "node_rank", "rdzv_host"))],
        supports_check_mode=True,
    )
    params = module.params
    try:
        validate_run_id(params["run_id"])
    except SpecError as exc:
        module.fail_json(msg=str(exc))
    if not module.get_bin_path("systemd-run") and not module.check_mode:
        module.fail_json(msg="systemd-run is missing: the torchrun role needs systemd on the nodes")
    paths = run_paths(params["base_dir"], params["run_id"])
    unit = unit_name(params["run_id"])
    if params["state"] == "stopped":
        module.exit_json(**stop(module, params, paths, unit))
    module.exit_json(**start(module, params, paths, unit))


if __name__ == "__main__":
    main()
