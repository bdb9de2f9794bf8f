# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the torchrun role knows, as pure functions: shared by its modules, action plugins and tests.

- :func:`build_command` turns a launch spec into the exact torchrun command of one node
  (optionally wrapped in ``docker run``), and :func:`launch_script` into the script its
  systemd unit runs.
- :class:`LogState` reads a node's log incrementally: rendezvous progress of the torchrun
  agent, the JSON lines the job prints (``joined`` / ``step`` / ``done`` ...), restarts, errors.
- :func:`decide` is the watcher's verdict over every node's latest state: still running,
  succeeded, or failed, and which node failed first and why.
- :func:`summarize` and :func:`summary_text` make the run report.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections import deque

UNIT_PREFIX = "aiinfra-torchrun-"
RANK_HOST_PREFIX = "aiinfra-rank-"
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NNODES_RE = re.compile(r"^([1-9][0-9]*)(?::([1-9][0-9]*))?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# torchrun agent log lines (LOGLEVEL=INFO), torch 2.x
ATTEMPT_RE = re.compile(r"The node '([^']+)' attempts to join the next round of the rendezvous '([^']*)'")
JOINED_RE = re.compile(r"The node '([^']+)' has joined round (\d+) of the rendezvous '([^']*)' as rank (\d+) "
                       r"in a world of size (\d+)")
RDZV_START_RE = re.compile(r"\] \[[^\]]*\] Rendezvous'ing worker group")
RDZV_DONE_RE = re.compile(r"\] \[[^\]]*\] Rendezvous complete for workers")
RDZV_FIELD_RE = re.compile(r"\]\s+(restart_count|group_rank|group_world_size)=(\d+)\s*$")
RESTART_RE = re.compile(r"Worker group (FAILED|UNHEALTHY)\. (\d+)/(\d+) attempts left; will restart worker group")
TEE_PREFIX_RE = re.compile(r"^\[([A-Za-z_][A-Za-z0-9_]*?)(\d+)\]:")
ERROR_RE = re.compile(r"(Error|Exception|Traceback|error:|FAILED|failed|Killed|exitcode)")

# lines that say nothing to a reader of a failure: C++ stack frames, Python's ^^^^ markers
NOISE_RE = re.compile(r"^(\[[A-Za-z_]*\d+\]:)?(\[rank\d+\]:)?\s*(frame #\d+:|\^+\s*$|~*\^+~*\s*$)")
LIFECYCLE_EVENTS = ("joined", "resume", "checkpoint", "done")
FAILED_PHASES = ("failed", "lost", "timeout")


class SpecError(ValueError):
    """A launch spec that cannot work; the message says which setting and why."""


def watch_dir(run_dir, started):
    """Where one watch of a run shares state on the controller: per launch, so a re-run never reads the files
    of a watcher that died with an earlier controller."""
    return os.path.join(os.path.abspath(run_dir), ".watch", "%d" % int(float(started) * 1000))


HOSTS_BEGIN = "# BEGIN aiinfra.gpu_cluster torchrun node names"
HOSTS_END = "# END aiinfra.gpu_cluster torchrun node names"


def hosts_block(rank_hosts):
    """The /etc/hosts lines that name every node by its rank (what --local-addr resolves to everywhere)."""
    lines = [HOSTS_BEGIN]
    for item in rank_hosts or []:
        lines.append("%s %s" % (item["address"], item.get("rank_host") or item["name"]))
    lines.append(HOSTS_END)
    return "\n".join(lines) + "\n"


def with_hosts_block(text, rank_hosts):
    """``text`` (an /etc/hosts) with our block replaced, or appended; everything else untouched."""
    block = hosts_block(rank_hosts)
    lines = text.splitlines(True)
    begin = next((i for i, ln in enumerate(lines) if ln.rstrip("\n") == HOSTS_BEGIN), None)
    end = next((i for i, ln in enumerate(lines) if ln.rstrip("\n") == HOSTS_END and begin is not None and i > begin),
               None)
    if begin is not None and end is not None:
        return "".join(lines[:begin]) + block + "".join(lines[end + 1:])
    if text and not text.endswith("\n"):
        text += "\n"
    return text + block


def unit_name(run_id):
    return "%s%s.service" % (UNIT_PREFIX, run_id)


def rank_hostname(index):
    """A name for the node of group rank ``index`` that sorts like the rank (torchrun orders nodes by name)."""
    return "%s%05d" % (RANK_HOST_PREFIX, int(index))


def validate_run_id(run_id):
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise SpecError("run id %r: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
                        % (run_id,))
    return run_id


def parse_nnodes(nnodes, hosts):
    """``""``/None: every host of the play; ``N``; or an elastic ``MIN:MAX``. Returns the torchrun string."""
    if nnodes in (None, ""):
        return str(hosts)
    text = str(nnodes).strip()
    match = NNODES_RE.match(text)
    if not match:
        raise SpecError("torchrun_nnodes %r: give a node count (e.g. 4) or an elastic range MIN:MAX (e.g. 2:4)"
                        % (nnodes,))
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if high < low:
        raise SpecError("torchrun_nnodes %r: MIN is larger than MAX" % (nnodes,))
    if low > hosts:
        raise SpecError("torchrun_nnodes %r needs at least %d nodes but the play has %d" % (nnodes, low, hosts))
    return text


def resolve_nproc(nproc_per_node, gpu_count, cpu_nproc_per_node):
    """Processes per node: ``auto`` means one per GPU, or ``cpu_nproc_per_node`` on a node without GPUs."""
    if nproc_per_node in (None, "", "auto"):
        value = gpu_count if gpu_count > 0 else cpu_nproc_per_node
        what = "the GPU count" if gpu_count > 0 else "torchrun_cpu_nproc_per_node"
    else:
        value, what = nproc_per_node, "torchrun_nproc_per_node"
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise SpecError("%s must be 'auto' or a whole number, got %r" % (what, value))
    if value < 1:
        raise SpecError("%s must be at least 1 (got %d): a node needs at least one training process" % (what, value))
    return value


def check_settings(settings, script_exists=None):
    """Every problem with the role's settings, each naming the variable, its value and what it must be.

    ``settings``: torchrun_* values without the prefix (script, module, nproc_per_node, cpu_nproc_per_node,
    rdzv_port, rdzv_timeout, max_restarts, timeout, nnodes, run_id, job_name, state). ``script_exists``:
    whether the script is a file on the controller (None: not checked). Returns a list of messages.
    """
    errors = []

    def number(name, low, high=None):
        value = settings.get(name)
        try:
            number_value = int(str(value))
        except (TypeError, ValueError):
            number_value = None
        if number_value is None or number_value < low or (high is not None and number_value > high):
            errors.append("torchrun_%s must be %s (got %r)" % (
                name, "a number from %d to %d" % (low, high) if high is not None else "at least %d" % low, value))

    script, module = settings.get("script") or "", settings.get("module") or ""
    if bool(script) == bool(module):
        errors.append("set exactly one of torchrun_script (a file on the controller, synced to the nodes; got %r) "
                      "and torchrun_module (a module already on the nodes; got %r)" % (script, module))
    elif script and script_exists is False:
        errors.append("torchrun_script %s does not exist on the controller (a relative path is relative to the "
                      "directory ansible-playbook runs in)" % script)
    nproc = settings.get("nproc_per_node")
    if str(nproc) != "auto":
        try:
            ok = int(str(nproc)) >= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            errors.append("torchrun_nproc_per_node must be 'auto' or at least 1 (got %r)" % (nproc,))
    number("cpu_nproc_per_node", 1)
    number("rdzv_port", 1, 65535)
    number("rdzv_timeout", 1)
    number("timeout", 1)
    number("max_restarts", 0)
    nnodes = settings.get("nnodes")
    if nnodes not in (None, "") and not NNODES_RE.match(str(nnodes)):
        errors.append("torchrun_nnodes must be empty (every node), N or MIN:MAX (got %r)" % (nnodes,))
    if settings.get("run_id") and not RUN_ID_RE.match(str(settings["run_id"])):
        errors.append("torchrun_run_id must be 1-64 letters, digits, '.', '_' or '-' (got %r)" % (settings["run_id"],))
    if not JOB_NAME_RE.match(str(settings.get("job_name") or "")):
        errors.append("torchrun_job_name must be 1-64 letters, digits, '.', '_' or '-' (got %r)"
                      % (settings.get("job_name"),))
    if settings.get("state") not in (None, "started", "stopped"):
        errors.append("torchrun_state must be started or stopped (got %r)" % (settings.get("state"),))
    elif settings.get("state") == "stopped" and not settings.get("run_id"):
        errors.append("torchrun_state=stopped needs torchrun_run_id, the run to stop (see runs/ on the controller or "
                      "the units aiinfra-torchrun-* on the nodes)")
    return errors


def layout(hosts):
    """Order the play's nodes for torchrun.

    ``hosts``: dicts with ``host``, ``rank`` (gpu_cluster_rank, may be None) and ``address``
    (gpu_cluster_private_address). Returns them sorted by rank with ``node_rank`` (0..N-1, the
    torchrun group rank) and ``rank_host`` (a name that sorts like the rank) added.
    """
    if not hosts:
        raise SpecError("there are no nodes to run on: the play's host group (gpu_nodes) is empty")
    nodes = []
    for index, item in enumerate(hosts):
        rank = item.get("rank")
        try:
            rank = index if rank in (None, "") else int(rank)
        except (TypeError, ValueError):
            raise SpecError("node %s: gpu_cluster_rank %r is not a number" % (item.get("host"), rank))
        if not item.get("address"):
            raise SpecError("node %s has no private address (gpu_cluster_private_address): is it running?"
                            % item.get("host"))
        nodes.append(dict(item, rank=rank))
    seen = {}
    for node in nodes:
        if node["rank"] in seen:
            raise SpecError("nodes %s and %s both have gpu_cluster_rank %d"
                            % (seen[node["rank"]], node["host"], node["rank"]))
        seen[node["rank"]] = node["host"]
    nodes.sort(key=lambda n: n["rank"])
    for index, node in enumerate(nodes):
        node["node_rank"] = index
        node["rank_host"] = rank_hostname(index)
    return nodes


def _check_env(env):
    out = {}
    for key, value in (env or {}).items():
        if not ENV_NAME_RE.match(str(key)):
            raise SpecError("torchrun_env: %r is not a valid environment variable name" % (key,))
        if value is None:
            continue
        if isinstance(value, bool):
            value = "1" if value else "0"
        out[str(key)] = str(value)
    return out


def job_env(spec, ifname):
    """The environment of the job: ours first, the user's extras win."""
    env = {
        "PYTHONUNBUFFERED": "1",
        "LOGLEVEL": spec.get("agent_log_level") or "INFO",
        "AIINFRA_RUN_ID": spec["run_id"],
        "AIINFRA_JOB_NAME": spec.get("job_name") or "",
        "AIINFRA_CHECKPOINT_DIR": spec.get("checkpoint_dir") or "",
    }
    if ifname:
        env["NCCL_SOCKET_IFNAME"] = ifname
        env["GLOO_SOCKET_IFNAME"] = ifname
    if spec.get("nccl_debug"):
        env["NCCL_DEBUG"] = spec["nccl_debug"]
    if int(spec.get("max_restarts") or 0) > 0:
        # torch >= 2.5 shares the rendezvous store with the workers, but numbers restarts per node, so after
        # one node's restart workers read the previous attempt's addresses (pytorch/pytorch#135712): a fresh
        # store per attempt keeps restarts working
        env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    env.update(_check_env(spec.get("env")))
    return env


def torchrun_argv(spec, nproc):
    """The torchrun command line (argv) of one node."""
    if bool(spec.get("script")) == bool(spec.get("module")):
        raise SpecError("give exactly one of torchrun_script (a file synced to the nodes) and torchrun_module "
                        "(a Python module already installed on the nodes)")
    port = int(spec["rdzv_port"])
    if not 1 <= port <= 65535:
        raise SpecError("torchrun_rdzv_port %d is not a TCP port (1-65535)" % port)
    rdzv_conf = ["is_host=%d" % (1 if spec.get("rdzv_is_host") else 0)]
    if spec.get("rdzv_timeout"):
        rdzv_conf.append("join_timeout=%d" % int(spec["rdzv_timeout"]))
    argv = [spec.get("torchrun") or "torchrun",
            "--nnodes", str(spec["nnodes"]),
            "--nproc-per-node", str(nproc),
            "--node-rank", str(int(spec["node_rank"])),
            "--rdzv-backend", "c10d",
            "--rdzv-endpoint", "%s:%d" % (spec["rdzv_host"], port),
            "--rdzv-id", spec.get("rdzv_id") or spec["run_id"],
            "--rdzv-conf", ",".join(rdzv_conf),
            "--max-restarts", str(int(spec.get("max_restarts") or 0))]
    if spec.get("local_addr"):
        argv += ["--local-addr", spec["local_addr"]]
    if spec.get("monitor_interval"):
        argv += ["--monitor-interval", str(spec["monitor_interval"])]
    if spec.get("log_dir"):
        argv += ["--log-dir", spec["log_dir"], "--tee", "3"]
    if spec.get("module"):
        argv += ["-m", spec["module"]]
    else:
        argv.append(spec["script"])
    argv += [str(a) for a in (spec.get("script_args") or [])]
    return argv


def docker_argv(spec, env, inner, gpu_count):
    """Wrap ``inner`` (a torchrun argv) in ``docker run``: host network and IPC, GPUs, mounts, the job's env."""
    docker = spec.get("docker") or {}
    gpus = docker.get("gpus") or "auto"
    argv = ["docker", "run", "--rm", "--name", docker["name"], "--network", "host", "--ipc", "host",
            "--init", "--label", "aiinfra-torchrun-run=%s" % spec["run_id"]]
    if gpus == "auto":
        gpus = "all" if gpu_count > 0 else ""
    if gpus and gpus != "none":
        argv += ["--gpus", gpus]
    for item in spec.get("rank_hosts") or []:
        argv += ["--add-host", "%s:%s" % (item.get("rank_host") or item["name"], item["address"])]
    mounts = ["%s:%s" % (spec["workdir"], spec["workdir"])]
    if spec.get("run_dir"):
        mounts.append("%s:%s" % (spec["run_dir"], spec["run_dir"]))
    for mount in docker.get("mounts") or []:
        if ":" not in str(mount):
            raise SpecError("torchrun_docker_mounts: %r is not SRC:DEST[:OPTIONS]" % (mount,))
        mounts.append(str(mount))
    for mount in mounts:
        argv += ["-v", mount]
    argv += ["-w", spec["workdir"]]
    for key in sorted(env):
        argv += ["-e", "%s=%s" % (key, env[key])]
    argv += [str(a) for a in (docker.get("args") or [])]
    argv.append(docker["image"])
    return argv + inner


def build_command(spec, gpu_count=0, ifname=""):
    """The exact command of one node.

    Returns ``argv`` (what the unit executes), ``env`` (exported before it), ``nproc_per_node``
    and ``command``: one shell line, ``cd WORKDIR && K=V ... torchrun ...``, to print and to paste.
    """
    validate_run_id(spec["run_id"])
    cpu_nproc = spec.get("cpu_nproc_per_node")
    nproc = resolve_nproc(spec.get("nproc_per_node"), gpu_count, 1 if cpu_nproc is None else cpu_nproc)
    env = job_env(spec, ifname)
    inner = torchrun_argv(dict(spec, torchrun=(spec.get("docker") or {}).get("torchrun") or spec.get("torchrun"))
                          if spec.get("docker") else spec, nproc)
    if spec.get("docker"):
        argv = docker_argv(spec, env, inner, gpu_count)
        shown_env = {}
    else:
        argv, shown_env = inner, env
    command = "cd %s && %s" % (shlex.quote(spec["workdir"]), " ".join(
        ["%s=%s" % (k, shlex.quote(v)) for k, v in sorted(shown_env.items())] + [shlex.quote(a) for a in argv]))
    return {"argv": argv, "env": env if not spec.get("docker") else {}, "nproc_per_node": nproc,
            "command": command}


def launch_script(spec, built):
    """The shell script a node's systemd unit runs: cd, export, exec (so torchrun is the unit's main process)."""
    lines = ["#!/bin/sh",
             "# aiinfra.gpu_cluster torchrun: job %s, run %s, node rank %s (generated; edits are overwritten)"
             % (spec.get("job_name") or "-", spec["run_id"], spec["node_rank"]),
             "cd %s || exit 1" % shlex.quote(spec["workdir"])]
    for key, value in sorted(built["env"].items()):
        lines.append("export %s=%s" % (key, shlex.quote(value)))
    lines.append("exec " + " ".join(shlex.quote(a) for a in built["argv"]))
    return "\n".join(lines) + "\n"


def poststop_script(spec, exit_path):
    """Runs (as root) after the unit's processes are gone: records how it ended; removes the job's container."""
    lines = ["#!/bin/sh",
             "# aiinfra.gpu_cluster torchrun: record how run %s ended (systemd ExecStopPost)" % spec["run_id"]]
    if spec.get("docker"):
        lines.append("docker rm -f %s >/dev/null 2>&1 || true" % shlex.quote(spec["docker"]["name"]))
    lines.append('printf \'{"result": "%%s", "code": "%%s", "status": "%%s", "time": %%s}\\n\' '
                 '"$SERVICE_RESULT" "$EXIT_CODE" "$EXIT_STATUS" "$(date +%%s.%%N)" > %s.tmp'
                 % shlex.quote(exit_path))
    lines.append("mv -f %s.tmp %s" % (shlex.quote(exit_path), shlex.quote(exit_path)))
    return "\n".join(lines) + "\n"


POLL_MARK = "@@aiinfra-torchrun@@"
PROBE_PY = ("import socket,sys\n"
            "try:\n"
            "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()\n"
            "    print('ok')\n"
            "except Exception as e:\n"
            "    print(str(e) or type(e).__name__)\n")


def poll_script(run_dir, unit, offset, wait=0.0, max_bytes=262144, probe=None, probe_timeout=3.0):
    """One cheap poll of a node (plain sh, no Python unless probing): waits up to ``wait`` seconds for the
    unit to stop, then prints its state, its exit record and the log from ``offset``; see :func:`parse_poll`."""
    q = shlex.quote
    lines = [
        "u=%s; d=%s; off=%d; n=%d" % (q(unit), q(run_dir), int(offset), int(max(0.0, wait) / 0.25)),
        'while [ "$n" -gt 0 ] && systemctl is-active --quiet "$u"; do sleep 0.25; n=$((n-1)); done',
        'echo "%s state $(systemctl show -p ActiveState --value "$u" 2>/dev/null)"' % POLL_MARK,
        "echo \"%s exit $(cat \"$d/exit.json\" 2>/dev/null | tr -d '\\n')\"" % POLL_MARK,
        'size=$(stat -c %s "$d/torchrun.log" 2>/dev/null || echo 0)',
        '[ "$size" -lt "$off" ] && off=0',
        '[ $((size - off)) -gt %d ] && off=$((size - %d))' % (int(max_bytes), int(max_bytes)),
        'echo "%s span $off $size"' % POLL_MARK,
    ]
    if probe:
        host, port = probe.rsplit(":", 1)
        lines.append('echo "%s probe $(python3 -c %s %s %s %s 2>&1 | tail -n 1)"'
                     % (POLL_MARK, q(PROBE_PY), q(host.strip("[]")), q(port), q(str(probe_timeout))))
    lines.append('echo "%s log"' % POLL_MARK)
    lines.append('[ "$size" -gt "$off" ] && tail -c +$((off + 1)) "$d/torchrun.log" | head -c $((size - off))')
    lines.append("true")
    return "\n".join(lines) + "\n"


def parse_poll(text, probe=None):
    """What :func:`poll_script` printed: active, unit_state, exit, log_start, log_offset, log_chunk, probe."""
    head, sep, log = text.partition("%s log\n" % POLL_MARK)
    if not sep:
        raise ValueError("not the output of a torchrun poll: %r" % text[-300:])
    result = {"active": False, "unit_state": "unknown", "exit": None, "log_chunk": log, "probe": None}
    for line in head.splitlines():
        if not line.startswith(POLL_MARK + " "):
            continue
        key, _sep, value = line[len(POLL_MARK) + 1:].partition(" ")
        value = value.strip()
        if key == "state":
            result["unit_state"] = value or "inactive"
            result["active"] = value in ("active", "activating", "deactivating", "reloading")
        elif key == "exit" and value:
            try:
                result["exit"] = json.loads(value)
            except ValueError:
                result["exit"] = None  # being written: the next poll reads it
        elif key == "span":
            start, end = value.split()
            result["log_start"], result["log_offset"] = int(start), int(end)
        elif key == "probe":
            result["probe"] = {"endpoint": probe, "ok": value == "ok", "error": None if value == "ok" else value}
    if result["active"]:
        result["exit"] = None
    return result


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


def strip_prefix(line):
    """A line without torchrun's ``[default0]:`` prefix (added by ``--tee``)."""
    match = TEE_PREFIX_RE.match(line)
    return line[match.end():] if match else line


def parse_json_line(line):
    """The JSON object a line carries (tolerating a torchrun ``[default0]:`` prefix), else None."""
    start = line.find("{")
    if start < 0 or not line.rstrip().endswith("}"):
        return None
    try:
        value = json.loads(line[start:])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def is_step(obj):
    return isinstance(obj.get("step"), int) and isinstance(obj.get("loss"), (int, float)) \
        and not isinstance(obj.get("loss"), bool)


class LogState(object):
    """What a node's log says so far; fed in chunks (``feed``), cheap to keep per node."""

    def __init__(self, keep_steps=False, tail=30):
        self.ranks = {}           # global rank -> its latest "joined" event
        self.attempted = False    # the torchrun agent reached the rendezvous store
        self.joined = None        # {"round", "group_rank", "world"} once the rendezvous completed
        self.restarts = 0          # the worker group's restart count (torchrun's restart_count)
        self.restart_requests = 0  # "will restart worker group" after a failure on this node
        self.last_metrics = None
        self.last_step = None
        self.first_step = None
        self.done = None
        self.resume = None
        self.last_checkpoint = None
        self.steps = [] if keep_steps else None
        self.tail = deque(maxlen=tail)
        self.errors = deque(maxlen=12)
        self.lines = 0
        self._carry = ""
        self._rdzv = None

    def feed(self, text):
        if not text:
            return self
        text = self._carry + text
        parts = text.split("\n")
        self._carry = parts.pop()
        for line in parts:
            self.line(line)
        return self

    def finish(self):
        if self._carry:
            self.line(self._carry)
            self._carry = ""
        return self

    def line(self, raw):
        raw = raw.rstrip("\r")
        if not raw.strip():
            return
        self.lines += 1
        self.tail.append(raw[:400])
        text = strip_prefix(raw)
        obj = parse_json_line(text) if "{" in text else None
        if obj is not None:
            self._event(obj)
            return
        if self._rdzv is not None:
            match = RDZV_FIELD_RE.search(text)
            if match:
                self._rdzv[match.group(1)] = int(match.group(2))
                if match.group(1) == "group_world_size":
                    self.joined = {"round": self._rdzv.get("restart_count", 0),
                                   "group_rank": self._rdzv.get("group_rank"), "world": self._rdzv[match.group(1)]}
                    self.restarts = max(self.restarts, self._rdzv.get("restart_count", 0))
                    self._rdzv = None
                return
        if RDZV_DONE_RE.search(text):
            self.attempted = True
            self._rdzv = {}
            return
        if RDZV_START_RE.search(text):
            self.attempted = True
            return
        match = JOINED_RE.search(text)
        if match:
            self.attempted = True
            self.joined = {"round": int(match.group(2)), "group_rank": int(match.group(4)),
                           "world": int(match.group(5))}
            return
        if ATTEMPT_RE.search(text):
            self.attempted = True
            return
        if RESTART_RE.search(text):
            self.restart_requests += 1
            return
        if ERROR_RE.search(text):
            self.errors.append(raw[:400])

    def _event(self, obj):
        event = obj.get("event")
        if event == "joined" and isinstance(obj.get("rank"), int):
            self.ranks[obj["rank"]] = obj
            return
        if event == "done":
            self.done = obj
        elif event == "resume":
            self.resume = obj
        elif event == "checkpoint":
            self.last_checkpoint = obj
        if is_step(obj):
            self.last_step = obj
            if self.first_step is None:
                self.first_step = obj
            if self.steps is not None:
                self.steps.append(obj)
        if event not in LIFECYCLE_EVENTS or is_step(obj):
            self.last_metrics = obj

    def world_size(self):
        sizes = [e.get("world_size") for e in self.ranks.values() if isinstance(e.get("world_size"), int)]
        return max(sizes) if sizes else None

    def snapshot(self):
        """A JSON-able digest for the watcher's state file and the report."""
        return {
            "ranks": sorted(self.ranks),
            "restart_events": sorted(set(e.get("restart", 0) for e in self.ranks.values())),
            "world_size": self.world_size(),
            "attempted": self.attempted,
            "joined": self.joined,
            "restarts": self.restarts,
            "restart_requests": self.restart_requests,
            "last_metrics": self.last_metrics,
            "last_step": self.last_step,
            "first_step": self.first_step,
            "done": self.done,
            "resume": self.resume,
            "last_checkpoint": self.last_checkpoint,
            "tail": list(self.tail),
            "errors": list(self.errors),
            "lines": self.lines,
        }


def parse_log(text, keep_steps=True):
    return LogState(keep_steps=keep_steps, tail=40).feed(text).finish()


def rerun_plan(existing):
    """What a run id that may have run before means, from every node's torchrun_job_info.

    ``start``: never ran here; ``attach``: still running on some node; ``report``: ran to the end with
    exit code 0 on every node (report it again, run nothing); ``restart``: ran and failed or was stopped
    (start it again; the job resumes from its checkpoints).
    """
    existing = [e for e in existing or [] if isinstance(e, dict) and not e.get("skipped")]
    if not existing or not any(e.get("started") for e in existing):
        return "start"
    if any(e.get("active") for e in existing):
        return "attach"
    if all(exit_code(e.get("exit")) == 0 and (e.get("exit") or {}).get("result") == "success" for e in existing):
        return "report"
    return "restart"


# -- the watcher's verdict ---------------------------------------------------------------------------

def node_phase(state):
    """A node's phase from its latest state: running, succeeded, failed, timeout, lost, pending."""
    if not state:
        return "pending"
    if state.get("lost"):
        return "lost"
    if state.get("active"):
        return "running"
    exit_info = state.get("exit")
    if exit_info:
        if exit_info.get("result") == "timeout":
            return "timeout"
        if exit_info.get("result") == "success" and exit_code(exit_info) == 0:
            return "succeeded"
        return "failed"
    if state.get("started"):
        # the unit is gone and left no exit record: killed with its node, or stopped from outside
        return "failed"
    return "pending"


def _tail(state, lines=12):
    log = (state or {}).get("log") or {}
    errors = log.get("errors") or []
    tail = log.get("tail") or []
    return (tail[-lines:] if tail else errors[-lines:])


def _describe(host, state):
    phase = node_phase(state)
    rank = (state or {}).get("node_rank")
    who = "%s (node rank %s)" % (host, rank)
    if phase == "lost" or (state or {}).get("lost"):
        return who, "stopped answering: %s" % ((state or {}).get("lost") or "unreachable")
    if phase == "timeout":
        return who, "ran past torchrun_timeout (%ss) and was stopped" % (state or {}).get("timeout", "?")
    exit_info = (state or {}).get("exit") or {}
    code = exit_code(exit_info)
    if exit_info:
        how = "exit code %s" % code if exit_info.get("code") == "exited" else "killed by SIG%s" % exit_info.get(
            "status")
        return who, "torchrun ended with %s" % how
    return who, "its torchrun unit vanished without an exit record (the node shut down, or the unit was killed)"


def _failed_at(state, now):
    if state.get("lost"):
        return float(state.get("lost_at") or state.get("t") or now)
    return float((state.get("exit") or {}).get("time") or state.get("t") or now)


def decide(states, hosts, now, started, settings):
    """The verdict over all nodes.

    ``states``: host -> latest state (dicts the watchers write; may be missing); ``hosts``: host ->
    node_rank of every node that must take part; ``settings``: node_timeout, rdzv_timeout, timeout and
    settle (how long nodes that were running get to report after a first failure; node_timeout / 2) (s).
    Returns ``{"done": bool, "status": running|succeeded|failed, "reason": rendezvous|node|timeout|None,
    "failed": [hosts, first cause first], "message": str, "phases": {host: phase}}``.
    """
    node_timeout = float(settings.get("node_timeout") or 20)
    phases, stale = {}, {}
    for host in hosts:
        state = states.get(host)
        if state is None:
            if now - started > node_timeout:
                stale[host] = "no report from its watcher for %.0fs" % (now - started)
            phases[host] = "lost" if host in stale else "pending"
            continue
        phase = node_phase(state)
        age = now - float(state.get("t") or started)
        if phase in ("running", "pending") and age > node_timeout:
            stale[host] = "no answer for %.0fs" % age
            phase = "lost"
        phases[host] = phase
    order = sorted(hosts, key=lambda h: hosts[h])
    result = {"done": False, "status": "running", "reason": None, "failed": [], "message": "", "phases": phases}

    bad = [h for h in order if phases[h] in FAILED_PHASES]
    if bad:
        # When a node dies, its peers' workers fail a moment later ("connection closed by peer"), often before
        # the dead node's own watcher gives up on it. So before naming a cause, every node that is still
        # running gets a short while to report after the first failure; one that stays silent is the
        # likely cause and is named first, as lost.
        failed_at = min(_failed_at(states.get(h) or {}, now) for h in bad)
        silent = [h for h in order if phases[h] in ("running", "pending")
                  and float((states.get(h) or {}).get("t") or 0) < failed_at]
        if silent:
            if now - failed_at < float(settings.get("settle") or node_timeout / 2):
                return result
            for host in silent:
                phases[host] = "lost"
                stale[host] = "no answer since its peers failed %.0fs ago" % (now - failed_at)
            bad = silent + bad

        def first(host):
            state = states.get(host) or {}
            if phases[host] == "lost":
                return (0, float(state.get("lost_at") or state.get("t") or now), hosts[host])
            return (1, float((state.get("exit") or {}).get("time") or state.get("t") or now), hosts[host])
        bad.sort(key=first)
        result.update(done=True, status="failed", failed=bad)
        rendezvous_done = any(((states.get(h) or {}).get("log") or {}).get("joined")
                              or ((states.get(h) or {}).get("log") or {}).get("ranks") for h in order)
        if not rendezvous_done and all(phases[h] != "succeeded" for h in order):
            missing = [h for h in order if not ((states.get(h) or {}).get("log") or {}).get("attempted")]
            result["reason"] = "rendezvous"
            result["message"] = rendezvous_message(states, hosts, missing or bad, "failed before it completed")
            return result
        host = bad[0]
        state = dict(states.get(host) or {}, node_rank=hosts[host])
        state["lost"] = state.get("lost") or stale.get(host)
        who, why = _describe(host, state)
        others = ", ".join("%s (%s)" % (h, phases[h]) for h in bad[1:])
        result["reason"] = "timeout" if phases[host] == "timeout" else "node"
        result["message"] = "%s failed: %s.%s" % (who, why, " Also failed: %s." % others if others else "")
        return result

    if all(phases[h] == "succeeded" for h in order):
        result.update(done=True, status="succeeded", message="all %d nodes finished with exit code 0" % len(order))
        return result

    elapsed = now - started
    if settings.get("timeout") and elapsed > float(settings["timeout"]) + node_timeout:
        result.update(done=True, status="failed", reason="timeout", failed=[h for h in order if
                                                                            phases[h] == "running"],
                      message="the job ran past torchrun_timeout (%ss)" % settings["timeout"])
        return result

    if settings.get("rdzv_timeout") and elapsed > float(settings["rdzv_timeout"]):
        joined = [h for h in order if ((states.get(h) or {}).get("log") or {}).get("joined")
                  or phases[h] == "succeeded"]
        if len(joined) < len(order):
            missing = [h for h in order if not ((states.get(h) or {}).get("log") or {}).get("attempted")
                       and phases[h] != "succeeded"]
            waiting = [h for h in order if h not in joined]
            result.update(done=True, status="failed", reason="rendezvous", failed=missing or waiting,
                          message=rendezvous_message(states, hosts, missing or waiting,
                                                     "did not complete within torchrun_rdzv_timeout (%ds)"
                                                     % int(float(settings["rdzv_timeout"]))))
            return result
    return result


def rendezvous_message(states, hosts, missing, what):
    parts = []
    for host in missing:
        state = states.get(host) or {}
        probe = state.get("probe")
        detail = ""
        if node_phase(state) in FAILED_PHASES:
            detail = ": " + _describe(host, dict(state, node_rank=hosts.get(host)))[1]
        elif probe and not probe.get("ok"):
            detail = ": cannot reach the rendezvous endpoint %s (%s)" % (probe.get("endpoint"), probe.get("error"))
        elif probe and probe.get("ok"):
            detail = ": reaches %s but its torchrun agent never joined" % probe.get("endpoint")
        parts.append("%s (node rank %s)%s" % (host, hosts.get(host), detail))
    return "the rendezvous %s; did not join: %s" % (what, "; ".join(parts) if parts else "none named")


# -- the report --------------------------------------------------------------------------------------

def summarize(run, nodes, verdict, parsed):
    """The run's summary (what summary.json holds).

    ``run``: run_id, job, started, ended, rdzv_endpoint, nnodes; ``nodes``: list of dicts host,
    node_rank, address, nproc_per_node, state (the watcher's last state); ``parsed``: host -> LogState
    of the fetched log (or None); ``verdict``: :func:`decide`'s result.
    """
    rows, world, all_steps = [], 0, {}
    for node in sorted(nodes, key=lambda n: n["node_rank"]):
        state = dict(node.get("state") or {})
        log = parsed.get(node["host"])
        snap = log.snapshot() if log is not None else (state.get("log") or {})
        phase = node_phase(state)
        stopped = node.get("stopped") or {}
        if phase in ("running", "pending") and stopped.get("action") == "stopped":
            # still running when the job was stopped because of another node
            phase = "stopped"
            state["exit"] = stopped.get("exit") or state.get("exit")
        exit_info = state.get("exit") or {}
        ended = exit_info.get("time")
        began = state.get("started_at")
        world += int(node.get("nproc_per_node") or 0)
        rows.append({
            "host": node["host"],
            "node_rank": node["node_rank"],
            "address": node.get("address"),
            "nproc_per_node": node.get("nproc_per_node"),
            "phase": phase,
            "exit_code": exit_code(exit_info),
            "result": exit_info.get("result") or ("lost" if state.get("lost") else None),
            "duration_s": round(float(ended) - float(began), 1) if ended and began else None,
            "ranks": snap.get("ranks") or [],
            "restarts": snap.get("restarts") or 0,
            "last_metrics": snap.get("last_metrics"),
            "log": node.get("log_path"),
            "log_tail": (snap.get("tail") or [])[-40:],
            "started_at": state.get("started_at"),
        })
        if log is not None and log.steps:
            for item in log.steps:
                all_steps.setdefault(item["step"], item)
    steps = [all_steps[k] for k in sorted(all_steps)]
    codes = [r["exit_code"] for r in rows]
    first_bad = verdict.get("failed") or []
    aggregate = 0
    if verdict.get("status") != "succeeded":
        primary = [r for r in rows if first_bad and r["host"] == first_bad[0]]
        aggregate = next((c for c in [p["exit_code"] for p in primary] + codes if c), None) or 1
    metrics = {"steps_logged": len(steps)}
    if steps:
        metrics.update(first_step=steps[0]["step"], last_step=steps[-1]["step"], first_loss=steps[0]["loss"],
                       last_loss=steps[-1]["loss"], loss_went_down=steps[-1]["loss"] < steps[0]["loss"])
        rates = [s.get("samples_per_s") for s in steps[1:] if isinstance(s.get("samples_per_s"), (int, float))]
        if rates:
            metrics["samples_per_s"] = round(sorted(rates)[len(rates) // 2], 1)
    for row in rows:
        log = parsed.get(row["host"])
        if log is not None and log.done:
            for key in ("eval_acc", "resumed_from", "already_complete"):
                if key in log.done:
                    metrics[key] = log.done[key]
        if log is not None and log.resume and "resumed_from_step" not in metrics:
            metrics["resumed_from_step"] = log.resume.get("step")
    world_seen = max([len(r["ranks"]) for r in rows] + [0])
    ranks_seen = sorted(set(k for r in rows for k in r["ranks"]))
    started, ended = run.get("started"), run.get("ended")
    return {
        "run_id": run["run_id"],
        "job": run.get("job"),
        "status": verdict.get("status"),
        "reason": verdict.get("reason"),
        "message": verdict.get("message"),
        "failed_nodes": first_bad,
        "exit_code": aggregate,
        "nnodes": len(rows),
        "world_size": world,
        "ranks_reported": ranks_seen,
        "ranks_per_node_max": world_seen,
        "rdzv_endpoint": run.get("rdzv_endpoint"),
        "started": started,
        "ended": ended,
        "duration_s": round(ended - started, 1) if started and ended else None,
        "metrics": metrics,
        "nodes": rows,
        "steps": [{"step": s["step"], "loss": s["loss"], "samples_per_s": s.get("samples_per_s")} for s in steps],
    }


def summary_text(summary, plot_path=None):
    """The report people read at the end of the play."""
    took = " in %ss" % summary["duration_s"] if summary.get("duration_s") else ""
    lines = ["torchrun run %s (job %s): %s%s"
             % (summary["run_id"], summary.get("job") or "-", summary["status"].upper(), took)]
    lines.append("  %d nodes, world size %d, ranks reported: %d/%d, aggregate exit code %s" % (
        summary["nnodes"], summary["world_size"], len(summary["ranks_reported"]), summary["world_size"],
        summary["exit_code"]))
    if summary.get("message") and summary["status"] != "succeeded":
        lines.append("  cause: %s" % summary["message"])
    lines.append("  %-4s %-24s %-16s %-10s %-5s %-9s %s" % ("rank", "node", "address", "phase", "exit",
                                                            "time", "last metrics"))
    for row in summary["nodes"]:
        metrics = row.get("last_metrics") or {}
        shown = ", ".join("%s=%s" % (k, metrics[k]) for k in metrics if k not in ("event", "time", "world_size"))
        lines.append("  %-4s %-24s %-16s %-10s %-5s %-9s %s" % (
            row["node_rank"], row["host"], row.get("address") or "-", row["phase"],
            "-" if row["exit_code"] is None else row["exit_code"],
            "-" if row["duration_s"] is None else "%ss" % row["duration_s"], shown[:80]))
    restarted = ["%s x%d" % (r["host"], r["restarts"]) for r in summary["nodes"] if r.get("restarts")]
    if restarted:
        lines.append("  worker group restarted (torchrun_max_restarts): %s" % ", ".join(restarted))
    metrics = summary.get("metrics") or {}
    if metrics.get("steps_logged"):
        lines.append("  loss %s at step %s -> %s at step %s (%s)%s%s" % (
            metrics["first_loss"], metrics["first_step"], metrics["last_loss"], metrics["last_step"],
            "went down" if metrics["loss_went_down"] else "did NOT go down",
            ", median %s samples/s" % metrics["samples_per_s"] if metrics.get("samples_per_s") else "",
            ", eval accuracy %s" % metrics["eval_acc"] if "eval_acc" in metrics else ""))
    if metrics.get("resumed_from_step") is not None:
        lines.append("  resumed from the checkpoint of step %s" % metrics["resumed_from_step"])
    if plot_path:
        lines.append("  loss plot: %s" % plot_path)
    return "\n".join(lines)


def failure_message(summary, unstopped=()):
    """One message for the failed play: what failed, where, and the tail of that node's log."""
    msg = ["torchrun run %s failed: %s" % (summary["run_id"], summary.get("message") or "see the summary")]
    for host in (summary.get("failed_nodes") or [])[:1]:
        row = next((r for r in summary["nodes"] if r["host"] == host), None)
        tail = [line for line in (row or {}).get("log_tail") or [] if not NOISE_RE.match(line)]
        if tail:
            msg.append("last lines of %s's log (%s):" % (host, row.get("log") or "not fetched"))
            msg.extend("  " + line for line in tail[-12:])
    if unstopped:
        msg.append("Stopped the job on every node but %s, which could not be reached or stopped (a unit left there "
                   "ends by itself at torchrun_timeout)." % ", ".join(unstopped))
    else:
        msg.append("Stopped the job on every node.")
    msg.append("Logs and summary.json are in the run directory; re-running the playbook resumes from the last "
               "checkpoint.")
    return "\n".join(msg)
