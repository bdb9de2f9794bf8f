"""The node side of the torchrun role: the launch command, the run directory, the hosts block, exit codes."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import torchrun as tr


def spec(**kw):
    base = {
        "run_id": "r1", "job_name": "example", "workdir": "/w/jobs/example", "checkpoint_dir": "/w/jobs/example/ck",
        "torchrun": "/opt/aiinfra/pytorch/bin/torchrun", "script": "/w/jobs/example/train.py",
        "script_args": ["--steps", 10], "nnodes": "3", "node_rank": 1, "nproc_per_node": "auto",
        "cpu_nproc_per_node": 2, "rdzv_host": "10.0.0.2", "rdzv_port": 29400, "rdzv_id": "r1-abc",
        "rdzv_is_host": False, "rdzv_timeout": 120, "local_addr": "aiinfra-rank-00001", "max_restarts": 1,
        "log_dir": "/w/runs/r1/ranks", "output_dir": "/w/runs/r1/outputs", "env": {}, "nccl_debug": "",
    }
    base.update(kw)
    return base


def opt(argv, name):
    return argv[argv.index(name) + 1]


# -- command builder -------------------------------------------------------------------------------

def test_command_on_a_cpu_node():
    built = tr.build_command(spec(), gpu_count=0, ifname="eth0")
    argv = built["argv"]
    assert argv[0] == "/opt/aiinfra/pytorch/bin/torchrun"
    assert opt(argv, "--nnodes") == "3"
    assert opt(argv, "--nproc-per-node") == "2" and built["nproc_per_node"] == 2  # cpu_nproc_per_node
    assert opt(argv, "--node-rank") == "1"
    assert opt(argv, "--rdzv-backend") == "c10d"
    assert opt(argv, "--rdzv-endpoint") == "10.0.0.2:29400"
    assert opt(argv, "--rdzv-id") == "r1-abc"
    assert opt(argv, "--rdzv-conf") == "is_host=0,join_timeout=120"
    assert opt(argv, "--local-addr") == "aiinfra-rank-00001"
    assert opt(argv, "--max-restarts") == "1"
    assert opt(argv, "--log-dir") == "/w/runs/r1/ranks" and opt(argv, "--tee") == "3"
    assert argv[-3:] == ["/w/jobs/example/train.py", "--steps", "10"]
    env = built["env"]
    assert env["NCCL_SOCKET_IFNAME"] == "eth0" and env["GLOO_SOCKET_IFNAME"] == "eth0"
    assert env["AIINFRA_RUN_ID"] == "r1" and env["AIINFRA_CHECKPOINT_DIR"] == "/w/jobs/example/ck"
    assert env["AIINFRA_OUTPUT_DIR"] == "/w/runs/r1/outputs"
    assert env["PYTHONUNBUFFERED"] == "1" and env["LOGLEVEL"] == "INFO"
    assert "NCCL_DEBUG" not in env
    assert env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] == "1"  # restarts on (pytorch/pytorch#135712)
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE" not in tr.build_command(spec(max_restarts=0))["env"]
    # the printed command is the exact one: it parses back to the env assignments + argv
    words = shlex.split(built["command"])
    assert words[:3] == ["cd", "/w/jobs/example", "&&"]
    assert [w for w in words[3:] if "=" in w and not w.startswith("-")][:len(env)] == \
        ["%s=%s" % (k, env[k]) for k in sorted(env)]
    assert words[3 + len(env):] == argv


def test_nproc_is_the_gpu_count_on_gpu_nodes_and_explicit_wins():
    assert tr.build_command(spec(), gpu_count=8)["nproc_per_node"] == 8
    assert tr.build_command(spec(nproc_per_node="4"), gpu_count=8)["nproc_per_node"] == 4
    assert tr.build_command(spec(nproc_per_node=3), gpu_count=0)["nproc_per_node"] == 3


@pytest.mark.parametrize("value", ["0", 0, "-1", "two"])
def test_bad_nproc_fails_clearly(value):
    with pytest.raises(tr.SpecError, match="torchrun_nproc_per_node"):
        tr.build_command(spec(nproc_per_node=value))


def test_zero_cpu_nproc_fails_clearly():
    with pytest.raises(tr.SpecError, match="at least 1"):
        tr.build_command(spec(cpu_nproc_per_node=0), gpu_count=0)


def test_rank0_hosts_the_store_and_module_mode():
    built = tr.build_command(spec(rdzv_is_host=True, script=None, module="mypkg.train", script_args=["-x"]))
    argv = built["argv"]
    assert opt(argv, "--rdzv-conf").startswith("is_host=1")
    assert argv[-3:] == ["-m", "mypkg.train", "-x"]


def test_env_extras_win_and_nccl_debug():
    built = tr.build_command(spec(env={"NCCL_SOCKET_IFNAME": "ib0", "FOO": 1, "FLAG": True, "GONE": None},
                                  nccl_debug="INFO"), ifname="eth0")
    env = built["env"]
    assert env["NCCL_SOCKET_IFNAME"] == "ib0" and env["GLOO_SOCKET_IFNAME"] == "eth0"
    assert env["FOO"] == "1" and env["FLAG"] == "1" and "GONE" not in env
    assert env["NCCL_DEBUG"] == "INFO"


def test_no_interface_no_ifname_vars():
    env = tr.build_command(spec(), ifname="")["env"]
    assert "NCCL_SOCKET_IFNAME" not in env and "GLOO_SOCKET_IFNAME" not in env


@pytest.mark.parametrize("kw, match", [
    ({"module": "m"}, "exactly one"),
    ({"script": None}, "exactly one"),
    ({"rdzv_port": 70000}, "TCP port"),
    ({"run_id": "bad id"}, "run id"),
    ({"run_id": "-x"}, "run id"),
    ({"env": {"BAD-NAME": "1"}}, "not a valid environment variable"),
])
def test_bad_specs(kw, match):
    with pytest.raises(tr.SpecError, match=match):
        tr.build_command(spec(**kw))


def test_docker_wraps_the_same_torchrun():
    docker = {"image": "nvcr.io/nvidia/pytorch:24.01", "gpus": "auto", "mounts": ["/data:/data:ro"],
              "args": ["--shm-size", "8g"], "torchrun": "torchrun", "name": "aiinfra-torchrun-r1"}
    rank_hosts = [{"rank_host": "aiinfra-rank-00000", "address": "10.0.0.2"},
                  {"rank_host": "aiinfra-rank-00001", "address": "10.0.0.3"}]
    built = tr.build_command(spec(docker=docker, rank_hosts=rank_hosts, node_run_dir="/w/runs/r1"), gpu_count=4,
                             ifname="eth0")
    argv = built["argv"]
    assert argv[:4] == ["docker", "run", "--rm", "--name"]
    assert opt(argv, "--network") == "host" and opt(argv, "--ipc") == "host" and "--init" in argv
    assert opt(argv, "--gpus") == "all"
    assert "aiinfra-rank-00000:10.0.0.2" in argv and "aiinfra-rank-00001:10.0.0.3" in argv
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    # only the job's own directories (not root's run directory), then the user's mounts
    assert mounts == ["/w/jobs/example:/w/jobs/example", "/w/runs/r1/ranks:/w/runs/r1/ranks",
                      "/w/runs/r1/outputs:/w/runs/r1/outputs", "/data:/data:ro"]
    assert "NCCL_SOCKET_IFNAME=eth0" in argv and "--shm-size" in argv
    image_at = argv.index("nvcr.io/nvidia/pytorch:24.01")
    assert argv[image_at + 1] == "torchrun" and opt(argv, "--nproc-per-node") == "4"
    assert built["env"] == {}  # the environment travels as -e inside the docker command
    # a CPU node gets no --gpus
    cpu = tr.build_command(spec(docker=docker, node_run_dir="/w/runs/r1"), gpu_count=0)["argv"]
    assert "--gpus" not in cpu
    with pytest.raises(tr.SpecError, match="SRC:DEST"):
        tr.build_command(spec(docker=dict(docker, mounts=["/data"]), node_run_dir="/w/runs/r1"))


def test_launch_and_poststop_scripts():
    s = spec()
    built = tr.build_command(s, ifname="eth0")
    script = tr.launch_script(s, built)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh" and lines[2] == "cd /w/jobs/example || exit 1"
    assert "export NCCL_SOCKET_IFNAME=eth0" in lines
    assert lines[-1] == "exec " + " ".join(shlex.quote(a) for a in built["argv"])  # torchrun is the main process
    post = tr.poststop_script(s, "/w/runs/r1/exit.json")
    assert "$SERVICE_RESULT" in post and "$EXIT_STATUS" in post and "docker rm" not in post
    post = tr.poststop_script(spec(docker={"name": "aiinfra-torchrun-r1"}), "/w/runs/r1/exit.json")
    assert "docker rm -f aiinfra-torchrun-r1" in post


@pytest.mark.parametrize("system_state, shutdown", [("stopping", True), ("running", False), ("degraded", False)])
def test_the_exit_record_says_whether_the_node_was_shutting_down(tmp_path, system_state, shutdown):
    # run the script as systemd's ExecStopPost would, with a systemctl that answers as the node would
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\n[ \"$1\" = is-system-running ] && echo %s\n" % system_state)
    (bin_dir / "systemctl").chmod(0o755)
    exit_path = tmp_path / "exit.json"
    env = {"PATH": "%s:/usr/bin:/bin" % bin_dir, "SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited",
           "EXIT_STATUS": "1"}
    subprocess.run(["/bin/sh", "-c", tr.poststop_script(spec(), str(exit_path))], env=env, check=True)
    record = json.loads(exit_path.read_text())
    assert record["shutdown"] is shutdown and record["result"] == "exit-code" and record["status"] == "1"
    assert isinstance(record["time"], float) and not (tmp_path / "exit.json.tmp").exists()


def test_exit_codes():
    assert tr.exit_code({"code": "exited", "status": "0"}) == 0
    assert tr.exit_code({"code": "exited", "status": "1"}) == 1
    assert tr.exit_code({"code": "killed", "status": "TERM"}) == 143
    assert tr.exit_code({"code": "killed", "status": "KILL"}) == 137
    assert tr.exit_code(None) is None


def test_hosts_block_replaces_only_ours():
    names = [{"rank_host": "aiinfra-rank-00000", "address": "10.0.0.2"},
             {"rank_host": "aiinfra-rank-00001", "address": "10.0.0.3"}]
    base = "127.0.0.1 localhost\n10.0.0.9 other"
    first = tr.with_hosts_block(base, names)
    assert first.startswith("127.0.0.1 localhost\n10.0.0.9 other\n# BEGIN aiinfra.gpu_cluster")
    assert "10.0.0.3 aiinfra-rank-00001\n# END" in first
    assert tr.with_hosts_block(first, names) == first  # idempotent
    moved = tr.with_hosts_block(first + "::1 ip6-localhost\n", [dict(names[0], address="10.0.0.7")])
    assert moved.count("# BEGIN") == 1 and "10.0.0.7 aiinfra-rank-00000" in moved
    assert "aiinfra-rank-00001" not in moved and moved.endswith("::1 ip6-localhost\n")


def test_run_dir_owns_the_layout():
    run = tr.RunDir("/var/lib/x", "r1")
    assert run.path == "/var/lib/x/runs/r1" and run.unit == "aiinfra-torchrun-r1.service"
    assert (run.log, run.exit, run.meta) == ("/var/lib/x/runs/r1/torchrun.log", "/var/lib/x/runs/r1/exit.json",
                                             "/var/lib/x/runs/r1/meta.json")
    with pytest.raises(tr.SpecError, match="run id"):
        tr.RunDir("/var/lib/x", "../etc")


def test_checkpoint_uploader_is_its_own_unit_bound_to_the_job_without_secrets_on_its_command_line():
    run = tr.RunDir("/var/lib/x", "r1")
    ckpt = {"uri": "s3://ml-ckpt/jobs/example", "dir": "/w/jobs/example/ck", "client_dir": "/opt/aiinfra/storage",
            "python": "/opt/aiinfra/storage/venv/bin/python", "env_file": tr.storage_env_path("example"),
            "interval": 3, "stable_seconds": 2, "final_timeout": 90}
    argv = tr.uploader_argv(spec(checkpoint=ckpt, user="gpuadmin"), run)
    assert argv[:3] == ["systemd-run", "--unit", "aiinfra-ckpt-r1.service"]
    # not an aiinfra-torchrun-* unit: never taken for another run of this node
    assert not tr.uploader_unit("r1").startswith(tr.UNIT_PREFIX)
    props = [argv[i + 1] for i, a in enumerate(argv) if a == "-p"]
    assert "BindsTo=aiinfra-torchrun-r1.service" in props and "Before=aiinfra-torchrun-r1.service" in props
    assert "User=aiinfra-ckpt" in props and "TimeoutStopSec=90" in props  # its own user, not the job's
    assert "EnvironmentFile=-/etc/aiinfra/torchrun/example.storage.env" in props
    assert "StandardOutput=append:/var/lib/x/runs/r1/checkpoints.log" in props
    tail = argv[argv.index("/opt/aiinfra/storage/venv/bin/python"):]
    assert tail[:4] == ["/opt/aiinfra/storage/venv/bin/python", "-m", "aiinfra_storage", "watch"]
    assert tail[4:6] == ["/w/jobs/example/ck", "s3://ml-ckpt/jobs/example"]
    assert opt(tail, "--status-file") == run.checkpoints
    assert (opt(tail, "--stable-seconds"), opt(tail, "--interval")) == ("2", "3")
    assert not any("AWS_" in a or "secret" in a.lower() for a in argv)
