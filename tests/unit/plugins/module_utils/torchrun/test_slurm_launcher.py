# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Slurm launcher (module_utils/torchrun/slurm.py): the node laid out for the step, the step itself (run for real
here, its records as the direct launch's unit keeps them), the poll seeing it alive, the Slurm commands."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import LaunchSpec, RunDir
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import slurm
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.job import JobManager, Node
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.plan import check_settings
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.poll import parse_poll, poll_script

SECRET = "hf_slurm-s3cr3t"
RUN_ID = "20260101-000000-5105a1"


class FakeSystemd(object):
    def __init__(self):
        self.calls = []

    def run(self, argv):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        if argv[:2] == ["systemctl", "show"]:
            return 0, "ActiveState=inactive\n", ""
        return 0, "", ""


def spec_for(tmp_path, launcher):
    return LaunchSpec(job_name="demo", workdir=str(tmp_path / "work"), nnodes="2", node_rank=1,
                      rdzv_host="10.0.0.1", rdzv_port=29400, timeout=60, stop_timeout=5, user="nobody",
                      torchrun="/bin/sh", script=str(tmp_path / "work" / "train.py"), script_args=["--steps", "3"],
                      secret_env_names=["HF_TOKEN"], launcher=launcher).to_dict()


@pytest.mark.skipif(os.geteuid() != 0, reason="root's run directory and the job user's need root")
def test_prepare_lays_the_node_out_for_the_step_and_starts_nothing(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    fake = FakeSystemd()
    args = dict(rdzv_id=RUN_ID + "-x", secret_env={"HF_TOKEN": SECRET}, script_content="print('t')\n", hosts_file="")
    job = JobManager(Node(fake.run, lambda name: None, lambda msg: None), str(tmp_path / "base"), RUN_ID)
    result = job.start(spec_for(tmp_path, "slurm"), **args)
    assert result["action"] == "prepared" and result["launcher"] == "slurm" and result["changed"]
    assert not [c for c in fake.calls if c[0] == "systemd-run"]
    run = RunDir(str(tmp_path / "base"), RUN_ID)
    paths = slurm.step_paths(run)
    nobody = __import__("pwd").getpwnam("nobody").pw_uid
    assert result["uid"] == nobody
    for path, uid, mode in ((paths["program"], 0, 0o644), (paths["config"], 0, 0o644),
                            (paths["secret_env"], nobody, 0o600), (run.log, nobody, 0o644),
                            (run.exit, nobody, 0o644), (run.meta, nobody, 0o644), (paths["pid"], nobody, 0o644)):
        st = os.lstat(path)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, mode), path
    assert os.stat(run.path).st_uid == 0 and not os.path.exists(run.secret_env)
    assert json.load(open(paths["secret_env"])) == {"HF_TOKEN": SECRET}
    config = json.load(open(paths["config"]))
    for text in (open(paths["config"]).read(), open(paths["program"]).read(), json.dumps(result)):
        assert SECRET not in text
    # the same command the direct launch runs on this node
    direct = JobManager(Node(FakeSystemd().run, lambda name: None, lambda msg: None), str(tmp_path / "base"),
                        RUN_ID).start(spec_for(tmp_path, "direct"), **args)
    assert config["argv"] == direct["argv"] == result["argv"] and config["meta"]["command"] == direct["command"]
    assert config["env"]["AIINFRA_RUN_ID"] == RUN_ID and config["env"]["USER"] == "nobody"
    assert "--rdzv-id %s-x" % RUN_ID in result["command"]
    # once it ran to its end, it is reported again unless restarted
    with open(run.exit, "w") as handle:
        handle.write('{"result": "success", "code": "exited", "status": "0", "time": 1}')
    assert job.start(spec_for(tmp_path, "slurm"), **args)["action"] == "finished"
    assert job.start(spec_for(tmp_path, "slurm"), restart_finished=True, **args)["action"] == "prepared"
    assert os.path.getsize(run.exit) == 0


def step_setup(tmp_path, code, timeout=30, secret=None):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("torchrun.log", "exit.json", "meta.json", "slurm_step.pid"):
        (run / name).write_text("")
    (run / "job.env.json").write_text(json.dumps(secret or {}))
    (run / "slurm_step.py").write_text(slurm.STEP_PROGRAM)
    config = {"argv": [sys.executable, "-c", code], "env": {"PATH": slurm.STEP_PATH, "X": "1"},
              "workdir": str(tmp_path), "log": str(run / "torchrun.log"), "exit": str(run / "exit.json"),
              "meta_path": str(run / "meta.json"), "pid": str(run / "slurm_step.pid"),
              "secret_env": str(run / "job.env.json"), "timeout": timeout, "stop_timeout": 2,
              "meta": {"run_id": RUN_ID, "node_rank": 0}}
    (run / "slurm_step.json").write_text(json.dumps(config))
    return run, [sys.executable, str(run / "slurm_step.py"), str(run / "slurm_step.json")]


def records(run):
    return (json.loads((run / "exit.json").read_text()), json.loads((run / "meta.json").read_text()),
            (run / "torchrun.log").read_text())


def test_the_step_runs_the_command_and_records_it_like_the_unit(tmp_path):
    run, argv = step_setup(tmp_path, "import os; print('hello', os.environ['X'], os.environ['HF_TOKEN'])",
                           secret={"HF_TOKEN": "tok"})
    proc = subprocess.run(argv, env={"SLURM_JOB_ID": "42", "PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode == 0
    exit_record, meta, log = records(run)
    assert (exit_record["result"], exit_record["code"], exit_record["status"]) == ("success", "exited", "0")
    assert meta["run_id"] == RUN_ID and meta["slurm_job_id"] == "42" and meta["started_at"] <= exit_record["time"]
    assert log == "hello 1 tok\n"


def test_the_step_records_a_failure_a_timeout_and_a_stop(tmp_path):
    run, argv = step_setup(tmp_path / "a" if (tmp_path / "a").mkdir() is None else None, "raise SystemExit(3)")
    assert subprocess.run(argv, check=False).returncode == 1
    assert records(run)[0]["result"] == "exit-code" and records(run)[0]["status"] == "3"
    run, argv = step_setup(tmp_path / "b" if (tmp_path / "b").mkdir() is None else None,
                           "import time; time.sleep(60)", timeout=1)
    began = time.time()
    assert subprocess.run(argv, check=False).returncode == 1 and time.time() - began < 20
    assert records(run)[0]["result"] == "timeout"
    run, argv = step_setup(tmp_path / "c" if (tmp_path / "c").mkdir() is None else None,
                           "import time; print('up', flush=True); time.sleep(60)")
    proc = subprocess.Popen(argv)
    deadline = time.time() + 20
    while "up" not in (run / "torchrun.log").read_text() and time.time() < deadline:
        time.sleep(0.1)
    # the poll sees the step alive under its pid (no systemd unit: the Slurm launcher)
    script = poll_script(RunDir(str(tmp_path / "base"), RUN_ID), 0)
    fake_run = RunDir(str(tmp_path / "base"), RUN_ID)
    script = script.replace(fake_run.path, str(run))
    polled = parse_poll(subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False).stdout)
    assert polled["active"]
    proc.send_signal(signal.SIGTERM)  # scancel
    assert proc.wait(20) == 1
    exit_record = records(run)[0]
    assert (exit_record["result"], exit_record["code"], exit_record["status"]) == ("signal", "killed", "TERM")
    polled = parse_poll(subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False).stdout)
    assert not polled["active"] and polled["exit"]["result"] == "signal"


def test_launcher_settings():
    base = {"script": "x.py", "job_name": "j"}
    assert not [e for e in check_settings(dict(base, launcher="slurm"))[1] if "launcher" in e]
    [err] = [e for e in check_settings(dict(base, launcher="pbs"))[1] if "launcher" in e]
    assert err == "torchrun_launcher must be direct or slurm (got 'pbs')"
    assert [e for e in check_settings(dict(base, launcher="slurm", docker_image="img"))[1] if "docker" in e]
    assert [e for e in check_settings(dict(base, launcher="slurm", checkpoint_uri="s3://b/p"))[1]
            if "checkpoint" in e]
    [err] = [e for e in check_settings(dict(base, launcher="slurm", framework="tensorflow"))[1] if "launcher" in e]
    assert err.startswith("torchrun_launcher=slurm runs PyTorch jobs only for now (torchrun_framework tensorflow")


class FakeSlurm(object):
    """squeue/sbatch/scancel/sacct: a queue that moves on each look."""

    def __init__(self, queues, sacct=""):
        self.queues = list(queues)
        self.sacct = sacct
        self.calls = []

    def run(self, argv, data=None):
        self.calls.append((list(argv), data))
        if argv[0] == "squeue":
            return 0, self.queues.pop(0) if len(self.queues) > 1 else self.queues[0], ""
        if argv[:5] == ["runuser", "-u", "aiinfra-job", "--", "sbatch"]:
            return 0, "12\n", ""
        if argv[0] == "sacct":
            return 0, self.sacct, ""
        if argv[0] == "scancel":
            return 0, "", ""
        return 1, "", "unknown"


def test_submit_waits_behind_the_job_ahead_and_runs():
    fake = FakeSlurm(["11|RUNNING|first|alice|None\n12|PENDING|run2|aiinfra-job|Resources\n"] * 3
                     + ["12|RUNNING|run2|aiinfra-job|None\n"])
    client = slurm.Slurm(fake.run, sleep=lambda s: None)
    argv = slurm.sbatch_argv("run2", "aiinfra-job", ["n0", "n1", "n2"], "/w/slurm-%j.out", "/w", 3600)
    assert client.submit(argv, slurm.batch_script("/b/runs/run2", 3)) == "12"
    sent, script = fake.calls[-1]
    for arg in ("--job-name=run2", "--nodes=3", "--ntasks-per-node=1", "--exclusive", "--nodelist=n0,n1,n2",
                "--time=61", "--export=NONE"):
        assert arg in sent
    assert "srun --nodes=3 --ntasks-per-node=1" in script and "/b/runs/run2/slurm_step.json" in script
    state, reason = client.state("12")
    assert (state, reason) == ("PENDING", "Resources")
    assert slurm.ahead_of(client.queue(), "12") == ["11"]
    assert slurm.pending_message("run2", "12", "Resources", ["11"]) == \
        "run run2: Slurm job 12 is waiting in the Slurm queue behind job 11 (Resources)"
    assert client.wait_running("12", 0) == ("RUNNING", ["11"])


def test_a_job_that_ends_before_it_runs_and_the_records():
    fake = FakeSlurm([""], sacct="12|run2|aiinfra-job|CANCELLED by 0|00:00:00|None assigned|0:0|Unknown|Unknown\n")
    client = slurm.Slurm(fake.run, sleep=lambda s: None)
    assert client.wait_running("12", 0) == ("CANCELLED", [])
    [record] = client.accounting("12")
    assert record["user"] == "aiinfra-job" and record["elapsed"] == "00:00:00"
    assert client.cancel("12") == (True, "")
    assert client.find("run2") is None
    clock = iter(range(0, 1000, 10))
    waiting = slurm.Slurm(FakeSlurm(["12|PENDING|r|u|Priority\n"]).run, sleep=lambda s: None,
                          clock=lambda: next(clock))
    assert waiting.wait_running("12", 30) == ("PENDING", [])
