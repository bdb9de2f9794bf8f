# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning a torchrun job on the controller, before anything starts.

:func:`plan` takes the play's nodes and the role's settings (``torchrun_*`` without the prefix, as users
typed them: a list may come as one string from ``-e`` or an AWX survey, a number as a string), checks
everything at once, and returns the nodes laid out by rank and each node's launch spec, built once and
passed whole to ``torchrun_job`` (whose :func:`build_command` turns it into the node's command).
"""

from __future__ import annotations

import datetime
import os
import random
import re

from ansible.module_utils.common.validation import check_type_dict

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._storage.base import StorageError, parse_uri
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import (
    ACTIVE_STATES, ENV_NAME_RE, JOB_USER, RUN_ID_RE, UPLOADER_USER, USER_RE, LaunchSpec, RunDir, SpecError, exit_code,
    secret_looking, storage_env_path)
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.role_inputs import RoleInputError, shell_words
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import tensorflow
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.slurm import check_launcher

RANK_HOST_PREFIX = "aiinfra-rank-"
JOB_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PORTS_RE = re.compile(r"[0-9]{1,5}(-[0-9]{1,5})?( *, *[0-9]{1,5}(-[0-9]{1,5})?)*")
NNODES_RE = re.compile(r"^([1-9][0-9]*)(?::([1-9][0-9]*))?$")
# settings given as lists (strings are split the way a shell splits them)
LIST_SETTINGS = ("script_args", "docker_args", "docker_mounts")
# settings that must be whole numbers: name -> (lowest, highest or None)
NUMBER_SETTINGS = {"cpu_nproc_per_node": (1, None), "rdzv_port": (1, 65535), "rdzv_timeout": (1, None),
                   "timeout": (1, None), "max_restarts": (0, None), "stop_timeout": (1, None),
                   "checkpoint_interval": (1, None), "checkpoint_stable_seconds": (1, None),
                   "checkpoint_final_timeout": (1, None)}


def rank_hostname(index):
    """A name for the node of group rank ``index`` that sorts like the rank (torchrun orders nodes by name)."""
    return "%s%05d" % (RANK_HOST_PREFIX, int(index))


def as_words(name, value):
    """A list setting as a list of strings: a list as it is, a string split the way a shell splits it (the role's
    variables arrive converted already, by the role_inputs lookup; this is for callers of the filter), nothing as
    []. Anything else is an error naming the setting."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = shell_words("torchrun_%s" % name, value)
        except RoleInputError as exc:
            raise SpecError(str(exc))
    if isinstance(value, (list, tuple)) and not any(isinstance(item, (dict, list, tuple)) for item in value):
        return [str(item) for item in value]
    raise SpecError("torchrun_%s must be a list of strings, e.g. [\"--steps\", \"60\"], or one string of shell "
                    "words (got %r)" % (name, value))


def as_env(value):
    """torchrun_env as a dict: a mapping, or a string of ``K=V`` words or JSON (Ansible's own dict conversion)."""
    if value in (None, ""):
        return {}
    try:
        return dict(check_type_dict(value))
    except (TypeError, ValueError):
        raise SpecError("torchrun_env must be a mapping, e.g. {\"OMP_NUM_THREADS\": \"4\"}, or a string of K=V "
                        "words (got %r)" % (value,))


def as_number(name, value):
    low, high = NUMBER_SETTINGS[name]
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or number < low or (high is not None and number > high):
        raise SpecError("torchrun_%s must be %s (got %r)" % (
            name, "a number from %d to %d" % (low, high) if high is not None else "at least %d" % low, value))
    return number


def parse_nnodes(nnodes, hosts):
    """``""``/None: every host of the play; ``N``; or an elastic ``MIN:MAX``. Returns the torchrun string."""
    if nnodes in (None, ""):
        return str(hosts)
    text = str(nnodes).strip()
    match = NNODES_RE.fullmatch(text)
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


def check_storage_uris(settings):
    """The object storage URIs' problems (none when they are empty: checkpoints and outputs stay on the nodes)."""
    errors = []
    for name in ("checkpoint_uri", "output_uri", "report_uri"):
        uri = str(settings.get(name) or "").strip()
        if uri:
            try:
                parse_uri(uri)
            except StorageError as exc:
                errors.append("torchrun_%s: %s" % (name, exc))
    if errors or not str(settings.get("checkpoint_uri") or "").strip():
        return errors
    if not settings.get("checkpoint_dir"):
        return ["torchrun_checkpoint_uri needs torchrun_checkpoint_dir, the directory on the nodes it mirrors"]
    return []


def checkpoint_spec(settings):
    """What the node needs to restore and upload the job's checkpoints; None when torchrun_checkpoint_uri is empty."""
    uri = str(settings.get("checkpoint_uri") or "").strip()
    if not uri:
        return None
    client_dir = settings.get("checkpoint_client_dir") or ""
    return {"uri": uri, "dir": settings["checkpoint_dir"], "client_dir": client_dir,
            "python": settings.get("checkpoint_client_python") or "%s/venv/bin/python" % client_dir.rstrip("/"),
            "env_file": storage_env_path(settings["job_name"]),
            "user": settings.get("checkpoint_user") or UPLOADER_USER,
            "interval": settings.get("checkpoint_interval", 5),
            "stable_seconds": settings.get("checkpoint_stable_seconds", 5),
            "final_timeout": settings.get("checkpoint_final_timeout", 600)}


def secret_env_names(value):
    """torchrun_secret_env's names (its values never leave the task that hands them to torchrun_job)."""
    if value in (None, ""):
        return []
    if not isinstance(value, dict):
        raise SpecError("torchrun_secret_env must be a mapping of environment variable names to values")
    bad = [str(k) for k in value if not ENV_NAME_RE.fullmatch(str(k))]
    if bad:
        raise SpecError("torchrun_secret_env: %s %s not valid environment variable names" % (
            ", ".join(repr(b) for b in sorted(bad)), "is" if len(bad) == 1 else "are"))
    return sorted(str(k) for k in value)


def check_secret_names(env):
    """A torchrun_env name that looks like a secret: it would be seen (command lines, results, files)."""
    names = sorted(str(k) for k in env if secret_looking(k))
    if names:
        return ["torchrun_env: %s %s (*TOKEN*, *SECRET*, *PASSWORD*, *_KEY): give %s in torchrun_secret_env, "
                "which reaches the job through a root-only file and is shown nowhere"
                % (", ".join(names), "looks like a secret" if len(names) == 1 else "look like secrets",
                   "it" if len(names) == 1 else "them")]
    return []


def check_settings(settings, script_exists=None):
    """Every problem with the role's settings, each naming the variable, its value and what it must be.

    ``settings``: torchrun_* values without the prefix. ``script_exists``: whether the script is a file on the
    controller (None: not checked). Returns ``(clean settings, list of messages)``.
    """
    errors = []
    clean = dict(settings)

    def check(name, convert, *args):
        try:
            clean[name] = convert(*args)
        except SpecError as exc:
            errors.append(str(exc))

    script, module = settings.get("script") or "", settings.get("module") or ""
    if bool(script) == bool(module):
        errors.append("set exactly one of torchrun_script (a file on the controller, synced to the nodes; got %r) "
                      "and torchrun_module (a module already on the nodes; got %r)" % (script, module))
    elif script and script_exists is False:
        errors.append("torchrun_script %s does not exist on the controller (a relative path is relative to the "
                      "directory ansible-playbook runs in)" % script)
    nproc = str(settings.get("nproc_per_node", "auto")).strip()
    if nproc != "auto":
        try:
            ok = int(nproc) >= 1
        except ValueError:
            ok = False
        if not ok:
            errors.append("torchrun_nproc_per_node must be 'auto' or at least 1 (got %r)"
                          % (settings.get("nproc_per_node"),))
    clean["nproc_per_node"] = nproc
    for name in NUMBER_SETTINGS:
        if name in settings:
            check(name, as_number, name, settings[name])
    for name in LIST_SETTINGS:
        check(name, as_words, name, settings.get(name))
    check("env", as_env, settings.get("env"))
    errors.extend(check_secret_names(clean.get("env") if isinstance(clean.get("env"), dict) else {}))
    clean.pop("secret_env", None)  # never in the plan (a fact, shown at -v): its names only
    check("secret_env_names", secret_env_names, settings.get("secret_env"))
    ports = str(settings.get("comm_ports") if settings.get("comm_ports") is not None else "").strip()
    if ports and not PORTS_RE.fullmatch(ports):
        errors.append("torchrun_comm_ports must be ports and ranges separated by commas, e.g. 32768-60999 (got %r)"
                      % (settings.get("comm_ports"),))
    user = settings.get("user")
    if user not in (None, "") and not USER_RE.fullmatch(str(user)):
        errors.append("torchrun_user must be a user name (lowercase letters, digits, '_' and '-'; got %r)" % (user,))
    nnodes = settings.get("nnodes")
    if nnodes not in (None, "") and not NNODES_RE.fullmatch(str(nnodes).strip()):
        errors.append("torchrun_nnodes must be empty (every node), N or MIN:MAX (got %r)" % (nnodes,))
    if settings.get("run_id") and not RUN_ID_RE.fullmatch(str(settings["run_id"])):
        errors.append("torchrun_run_id must be 1-64 letters, digits, '.', '_' or '-' (got %r)" % (settings["run_id"],))
    errors.extend(check_storage_uris(settings))
    # the framework (torchrun_framework: pytorch or tensorflow; plugin_utils/torchrun/tensorflow.py)
    framework, problems = tensorflow.check_framework(settings)
    clean.update(framework)
    errors.extend(problems)
    errors.extend(check_launcher(settings))  # torchrun_launcher: direct or slurm (module_utils/torchrun/slurm.py)
    if not JOB_NAME_RE.fullmatch(str(settings.get("job_name") or "")):
        errors.append("torchrun_job_name must be 1-64 letters, digits, '.', '_' or '-' (got %r)"
                      % (settings.get("job_name"),))
    if settings.get("state") not in (None, "started", "stopped"):
        errors.append("torchrun_state must be started or stopped (got %r)" % (settings.get("state"),))
    elif settings.get("state") == "stopped" and not settings.get("run_id"):
        errors.append("torchrun_state=stopped needs torchrun_run_id, the run to stop (see runs/ on the controller or "
                      "the units aiinfra-torchrun-* on the nodes)")
    return clean, errors


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


def launch_specs(nodes, settings):
    """Each node's launch spec (what ``torchrun_job`` takes as ``spec``), from checked settings.

    Common to all nodes: the job, where it runs, torchrun's options, the environment, Docker; per node: its
    node rank, whether it hosts the rendezvous store, the name it goes by in the rendezvous, its address.
    """
    rank0 = nodes[0]
    script = settings.get("script") or ""
    common = {
        "job_name": settings["job_name"],
        "workdir": settings["workdir"],
        "checkpoint_dir": settings.get("checkpoint_dir") or "",
        "torchrun": settings.get("bin") or "torchrun",
        "script": "%s/%s" % (settings["workdir"].rstrip("/"), os.path.basename(script)) if script else None,
        "module": settings.get("module") or None,
        "script_args": settings["script_args"],
        "nnodes": parse_nnodes(settings.get("nnodes"), len(nodes)),
        "nproc_per_node": settings["nproc_per_node"],
        "cpu_nproc_per_node": settings["cpu_nproc_per_node"],
        "rdzv_host": rank0["address"],
        "rdzv_port": settings["rdzv_port"],
        "rdzv_timeout": settings["rdzv_timeout"],
        "max_restarts": settings["max_restarts"],
        "env": settings["env"],
        "nccl_debug": settings.get("nccl_debug") or "",
        "agent_log_level": settings.get("agent_log_level") or "INFO",
        "socket_ifname": settings.get("socket_ifname") or "",
        "timeout": settings["timeout"],
        "stop_timeout": settings["stop_timeout"],
        "user": settings.get("user") or JOB_USER,
        "secret_env_names": settings.get("secret_env_names") or [],
        "rank_hosts": [{"name": n["host"], "rank_host": n["rank_host"], "address": n["address"]} for n in nodes],
        # restored before the launch, uploaded while the job runs (None: checkpoints stay on the nodes)
        "checkpoint": checkpoint_spec(settings),
        "launcher": str(settings.get("launcher") or "direct"),
    }
    common.update(tensorflow.spec_fields(settings))
    if settings.get("docker_image"):
        common["docker"] = {"image": settings["docker_image"], "gpus": str(settings.get("docker_gpus") or "auto"),
                            "mounts": settings["docker_mounts"], "args": settings["docker_args"],
                            "torchrun": settings.get("docker_torchrun") or "torchrun"}
    for item in settings["docker_mounts"]:
        if ":" not in item:
            raise SpecError("torchrun_docker_mounts: %r is not SRC:DEST[:OPTIONS]" % (item,))
    specs = {}
    for node in nodes:
        specs[node["host"]] = LaunchSpec(node_rank=node["node_rank"], rdzv_is_host=node["node_rank"] == 0,
                                         local_addr=node["rank_host"], private_address=node["address"],
                                         **common).to_dict()
    return specs


def plan(items, settings, script_exists=None):
    """Check the settings (every problem at once), lay the nodes out by rank, build each node's launch spec.

    Returns ``{"layout": [...], "specs": {host: spec}, "settings": clean settings}``; raises SpecError.
    """
    clean, errors = check_settings(settings, script_exists)
    if errors:
        raise SpecError("; ".join(errors))
    nodes = layout(items)
    specs = launch_specs(nodes, clean) if clean.get("state", "started") == "started" and clean.get("workdir") \
        else {}
    return {"layout": nodes, "specs": specs, "settings": clean}


def make_run_id(given="", attempts=(), now=None, rand=None):
    """The run id: a recovery's attempt is the first attempt's id and ``-r<attempt>``; else the one given
    (torchrun_run_id); else a new one, ``YYYYmmdd-HHMMSS-xxxxxx`` (UTC, 6 random hex digits)."""
    if attempts:
        return validate_id("%s-r%d" % (attempts[0]["run_id"], len(attempts)))
    if given:
        return validate_id(str(given))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return "%s-%06x" % (now.strftime("%Y%m%d-%H%M%S"), (rand or random.SystemRandom()).randrange(1 << 24))


def validate_id(run_id):
    if not RUN_ID_RE.fullmatch(run_id):
        raise SpecError("the run id %r must be 1-64 letters, digits, '.', '_' or '-'" % (run_id,))
    return run_id


def node_paths(base_dir, run_id):
    """Where the run lives on every node (RunDir's names, for the steps that read them: the report, the outputs, the
    checkpoint uploader's record)."""
    run = RunDir(base_dir, run_id)
    return {"run_dir": run.path, "unit": run.unit, "uploader_unit": run.uploader_unit, "log": run.log,
            "outputs": run.outputs, "outputs_archive": run.outputs_archive, "checkpoints": run.checkpoints,
            "active_states": list(ACTIVE_STATES)}


def rerun_plan(states):
    """What a run id that may have run before means, from every node's status (a poll's node states).

    ``start``: never ran here; ``attach``: still running on some node; ``report``: ran to the end with
    exit code 0 on every node (report it again, run nothing); ``restart``: ran and failed or was stopped
    (start it again; the job resumes from its checkpoints).
    """
    states = [s for s in states or [] if isinstance(s, dict) and not s.get("skipped")]
    if not states or not any(s.get("started") for s in states):
        return "start"
    if any(s.get("active") for s in states):
        return "attach"
    if all(exit_code(s.get("exit")) == 0 and (s.get("exit") or {}).get("result") == "success" for s in states):
        return "report"
    return "restart"


def plan_record(items, settings, attempts=(), cwd=".", rand=None, now=None):
    """The job's one plan record (what the ``torchrun_plan`` action returns): the settings checked (every problem
    at once), the run id, a fresh rendezvous id, the nodes by rank, each node's launch spec, where the run lives on
    the nodes and on the controller. ``settings``: the role's ``torchrun_*`` values (the prefix may be left out);
    ``items``: the nodes (``host``, ``rank``, ``address``); ``attempts``: a recovery's earlier attempts."""
    settings = dict((k[len("torchrun_"):] if k.startswith("torchrun_") else k, v) for k, v in (settings or {}).items())
    script = settings.get("script") or ""
    path = os.path.abspath(os.path.join(cwd, os.path.expanduser(script))) if script else ""
    record = plan(items, settings, os.path.isfile(path) if path else None)
    clean = record["settings"]
    run_id = make_run_id(clean.get("run_id") or "", attempts or (), now=now, rand=rand)
    rand = rand or random.SystemRandom()
    base_dir = clean.get("base_dir") or None
    runs_dir = clean.get("runs_dir") or "runs"
    run_dir = clean.get("run_dir") or os.path.join(runs_dir, run_id)
    rank0 = record["layout"][0]
    record.update(
        run_id=run_id, rdzv_id="%s-%06x" % (run_id, rand.randrange(1 << 24)), script=path,
        run_dir=os.path.realpath(os.path.join(cwd, os.path.expanduser(run_dir))),
        hosts=dict((n["host"], n["node_rank"]) for n in record["layout"]),
        addresses=dict((n["host"], n["address"]) for n in record["layout"]),
        rdzv_endpoint=tensorflow.endpoint(clean, rank0["address"])
        or "%s:%s" % (rank0["address"], clean.get("rdzv_port", 29400)),
        node=node_paths(base_dir, run_id), launcher=str(clean.get("launcher") or "direct"))
    return record
