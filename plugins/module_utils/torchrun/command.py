# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node's command: :func:`build_command` turns a node's launch spec (a :class:`~.spec.LaunchSpec`, made once on the
controller by the ``torchrun_plan`` action) into the exact torchrun command of that node, optionally wrapped in
``docker run``; :func:`launch_script`, :func:`poststop_script` and :func:`uploader_argv` into what its units run."""

from __future__ import annotations

import os
import shlex

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.layout import (
    ENV_NAME_RE, UPLOADER_USER, SpecError, container_label, validate_run_id)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.tensorflow import tensorflow_argv, tf_config


def env_file_text(env, docker=False):
    """An environment file: systemd's EnvironmentFile format (double quotes, backslash escapes), or Docker's
    ``--env-file`` format (``K=V``, taken literally). A value with a newline or NUL fits neither and is refused."""
    lines = []
    for key in sorted(env):
        value = str(env[key])
        if not ENV_NAME_RE.fullmatch(str(key)):
            raise SpecError("torchrun_secret_env: %r is not a valid environment variable name" % (key,))
        if "\n" in value or "\0" in value or "\r" in value:
            raise SpecError("torchrun_secret_env: the value of %s holds a line break or NUL, which no environment "
                            "file can carry" % key)
        if docker:
            lines.append("%s=%s" % (key, value))
        else:
            escaped = "".join("\\" + c if c in '\\"$`' else c for c in value)
            lines.append('%s="%s"' % (key, escaped))
    return "".join(line + "\n" for line in lines)


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


def _check_env(env):
    out = {}
    for key, value in (env or {}).items():
        if not ENV_NAME_RE.fullmatch(str(key)):
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
        "AIINFRA_OUTPUT_DIR": spec.get("output_dir") or "",
    }
    if ifname:
        env["NCCL_SOCKET_IFNAME"] = ifname
        env["GLOO_SOCKET_IFNAME"] = ifname
    if spec.get("docker") and spec.get("uid") is not None:
        env["HOME"] = spec["workdir"]  # the job's uid has no home in the image
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
    """Wrap ``inner`` (a torchrun argv) in ``docker run``: host network and IPC, GPUs, the job's directories (only
    those it may write, plus the user's own mounts), its user (``--user UID:GID``), its env (secrets through
    ``--env-file``, never on the command line)."""
    docker = spec.get("docker") or {}
    gpus = docker.get("gpus") or "auto"
    argv = ["docker", "run", "--rm", "--name", docker["name"], "--network", "host", "--ipc", "host",
            "--init", "--label", container_label(spec["run_id"])]
    if spec.get("uid") is not None:
        argv += ["--user", "%d:%d" % (int(spec["uid"]), int(spec.get("gid", spec["uid"])))]
    if gpus == "auto":
        gpus = "all" if gpu_count > 0 else ""
    if gpus and gpus != "none":
        argv += ["--gpus", gpus]
    for item in spec.get("rank_hosts") or []:
        argv += ["--add-host", "%s:%s" % (item.get("rank_host") or item["name"], item["address"])]
    mounts = ["%s:%s" % (path, path) for path in job_dirs(spec)]
    for mount in docker.get("mounts") or []:
        if ":" not in str(mount):
            raise SpecError("torchrun_docker_mounts: %r is not SRC:DEST[:OPTIONS]" % (mount,))
        mounts.append(str(mount))
    for mount in mounts:
        argv += ["-v", mount]
    argv += ["-w", spec["workdir"]]
    for key in sorted(env):
        argv += ["-e", "%s=%s" % (key, env[key])]
    if spec.get("secret_env_file"):
        argv += ["--env-file", spec["secret_env_file"]]
    argv += [str(a) for a in (docker.get("args") or [])]
    argv.append(docker["image"])
    return argv + inner


def job_dirs(spec):
    """The directories the job owns and writes: its working directory, its checkpoints (when not inside it), its
    per-rank logs and its outputs. Nothing else of the node is the job's."""
    out = []
    for path in (spec.get("workdir"), spec.get("checkpoint_dir"), spec.get("log_dir"), spec.get("output_dir")):
        if not path:
            continue
        path = os.path.normpath(path)
        if not any(path == d or path.startswith(d.rstrip("/") + "/") for d in out):
            out.append(path)
    return out


def build_command(spec, gpu_count=0, ifname=""):
    """The exact command of one node.

    Returns ``argv`` (what the unit executes), ``env`` (exported before it), ``nproc_per_node``
    and ``command``: one shell line, ``cd WORKDIR && K=V ... torchrun ...``, to print and to paste.
    """
    validate_run_id(spec["run_id"])
    if spec.get("framework") == "tensorflow":
        if spec.get("docker"):
            raise SpecError("a TensorFlow job runs in the nodes' TensorFlow virtualenv: Docker mode (torchrun_docker_"
                            "image) is for torchrun jobs")
        # one process per node (MultiWorkerMirroredStrategy uses every GPU of its node); TF_CONFIG places it
        env = job_env(spec, ifname)
        env = dict(env, TF_CONFIG=env.get("TF_CONFIG") or tf_config(spec))
        argv = tensorflow_argv(spec)
        command = "cd %s && %s" % (shlex.quote(spec["workdir"]), " ".join(
            ["%s=%s" % (k, shlex.quote(v)) for k, v in sorted(env.items())] + [shlex.quote(a) for a in argv]))
        return {"argv": argv, "env": env, "nproc_per_node": 1, "command": command}
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
    """The shell script a node's systemd unit runs, as root (it is root's, mode 0700, in root's run directory): cd,
    export, then exec torchrun as the job's user (``setpriv``: its uid, gid and groups, no new privileges, so no
    sudo) or, in Docker mode, ``docker run --user``. The secret environment is not in it: systemd (or docker's
    ``--env-file``) reads it from a root-only file."""
    lines = ["#!/bin/sh",
             "# aiinfra.gpu_cluster torchrun: job %s, run %s, node rank %s (generated; edits are overwritten)"
             % (spec.get("job_name") or "-", spec["run_id"], spec["node_rank"]),
             "cd %s || exit 1" % shlex.quote(spec["workdir"])]
    if spec.get("docker"):
        lines.append("exec " + " ".join(shlex.quote(a) for a in built["argv"]))
        return "\n".join(lines) + "\n"
    env = dict(built["env"])
    drop = []
    if spec.get("user"):
        env = dict({"HOME": spec.get("home") or spec["workdir"], "USER": spec["user"], "LOGNAME": spec["user"]}, **env)
        drop = ["setpriv", "--reuid", spec["user"], "--regid", str(spec.get("gid", spec["user"])), "--init-groups",
                "--no-new-privs", "--"]
    for key, value in sorted(env.items()):
        lines.append("export %s=%s" % (key, shlex.quote(value)))
    lines.append("exec " + " ".join(shlex.quote(a) for a in drop + built["argv"]))
    return "\n".join(lines) + "\n"


def uploader_argv(spec, run):
    """systemd-run for the checkpoint uploader of a run (``spec["checkpoint"]``): its own unit beside torchrun's,
    bound to it (it stops when the job's unit ends or is stopped, and is ordered before it, so its last push starts
    once the job is gone), running as a system user of its own (``uploader_user``: not the job's, so the job cannot
    read its environment), credentials from the root-only EnvironmentFile (never on a command line: the client
    reads them from its environment), ``python -m aiinfra_storage watch`` of the storage client (the dataset
    role's client.yml). Its push manifest starts from what the restore brought (``--baseline``: what it pulled is
    not pushed back). Its status file (``checkpoints.json``) holds what it uploaded, ``final`` once its last push
    is done."""
    ckpt = spec["checkpoint"]
    job_unit = run.unit
    what = "aiinfra.gpu_cluster checkpoint uploader of job %s run %s" % (spec["job_name"], spec["run_id"])
    return ["systemd-run", "--unit", run.uploader_unit, "--collect", "--quiet", "--description", what,
            "-p", "BindsTo=%s" % job_unit, "-p", "Before=%s" % job_unit,
            "-p", "User=%s" % (ckpt.get("user") or UPLOADER_USER),
            "-p", "EnvironmentFile=-%s" % ckpt["env_file"],
            "-p", "Environment=PYTHONPATH=%s PYTHONUNBUFFERED=1" % ckpt["client_dir"],
            "-p", "KillMode=mixed",
            "-p", "TimeoutStopSec=%d" % int(ckpt.get("final_timeout") or 600),
            "-p", "StandardOutput=append:%s" % run.checkpoints_log,
            "-p", "StandardError=append:%s" % run.checkpoints_log,
            ckpt["python"], "-m", "aiinfra_storage", "watch", ckpt["dir"], ckpt["uri"],
            "--stable-seconds", str(int(ckpt.get("stable_seconds") or 5)),
            "--interval", str(int(ckpt.get("interval") or 5)), "--status-file", run.checkpoints,
            "--manifest", run.push_manifest, "--baseline", os.path.join(ckpt["dir"], ".aiinfra-manifest.json")]


def poststop_script(spec, exit_path):
    """Runs (as root) after the unit's processes are gone: records how it ended; removes the job's container."""
    lines = ["#!/bin/sh",
             "# aiinfra.gpu_cluster torchrun: record how run %s ended (systemd ExecStopPost)" % spec["run_id"]]
    if spec.get("docker"):
        lines.append("docker rm -f %s >/dev/null 2>&1 || true" % shlex.quote(spec["docker"]["name"]))
    # "shutdown": the unit was stopped because its node is going down (a stopped VM or container, a reclaimed spot
    # node): torchrun then exits 1 after its SIGTERM, which alone would read as a failure of its own
    lines.append('[ "$(systemctl is-system-running 2>/dev/null)" = stopping ] && down=true || down=false')
    lines.append('printf \'{"result": "%%s", "code": "%%s", "status": "%%s", "time": %%s, "shutdown": %%s}\\n\' '
                 '"$SERVICE_RESULT" "$EXIT_CODE" "$EXIT_STATUS" "$(date +%%s.%%N)" "$down" > %s.tmp'
                 % shlex.quote(exit_path))
    lines.append("mv -f %s.tmp %s" % (shlex.quote(exit_path), shlex.quote(exit_path)))
    return "\n".join(lines) + "\n"
