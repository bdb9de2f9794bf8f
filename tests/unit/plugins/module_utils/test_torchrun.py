"""The torchrun role's pure logic: command builder, log parsing, the watcher's verdict, the report."""

from __future__ import annotations

import json
import shlex

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import torchrun as tr


def spec(**kw):
    base = {
        "run_id": "r1", "job_name": "example", "workdir": "/w/jobs/example", "checkpoint_dir": "/w/jobs/example/ck",
        "torchrun": "/opt/aiinfra/pytorch/bin/torchrun", "script": "/w/jobs/example/train.py",
        "script_args": ["--steps", 10], "nnodes": "3", "node_rank": 1, "nproc_per_node": "auto",
        "cpu_nproc_per_node": 2, "rdzv_host": "10.0.0.2", "rdzv_port": 29400, "rdzv_id": "r1-abc",
        "rdzv_is_host": False, "rdzv_timeout": 120, "local_addr": "aiinfra-rank-00001", "max_restarts": 1,
        "log_dir": "/w/runs/r1/ranks", "env": {}, "nccl_debug": "",
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
    built = tr.build_command(spec(docker=docker, rank_hosts=rank_hosts, run_dir="/w/runs/r1"), gpu_count=4,
                             ifname="eth0")
    argv = built["argv"]
    assert argv[:4] == ["docker", "run", "--rm", "--name"]
    assert opt(argv, "--network") == "host" and opt(argv, "--ipc") == "host" and "--init" in argv
    assert opt(argv, "--gpus") == "all"
    assert "aiinfra-rank-00000:10.0.0.2" in argv and "aiinfra-rank-00001:10.0.0.3" in argv
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    assert mounts == ["/w/jobs/example:/w/jobs/example", "/w/runs/r1:/w/runs/r1", "/data:/data:ro"]
    assert "NCCL_SOCKET_IFNAME=eth0" in argv and "--shm-size" in argv
    image_at = argv.index("nvcr.io/nvidia/pytorch:24.01")
    assert argv[image_at + 1] == "torchrun" and opt(argv, "--nproc-per-node") == "4"
    assert built["env"] == {}  # the environment travels as -e inside the docker command
    # a CPU node gets no --gpus
    cpu = tr.build_command(spec(docker=docker, run_dir="/w/runs/r1"), gpu_count=0)["argv"]
    assert "--gpus" not in cpu
    with pytest.raises(tr.SpecError, match="SRC:DEST"):
        tr.build_command(spec(docker=dict(docker, mounts=["/data"]), run_dir="/w/runs/r1"))


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


def test_nnodes():
    assert tr.parse_nnodes("", 4) == "4"
    assert tr.parse_nnodes(None, 2) == "2"
    assert tr.parse_nnodes("2:4", 4) == "2:4"
    for bad in ("0", "4:2", "x", "1:"):
        with pytest.raises(tr.SpecError):
            tr.parse_nnodes(bad, 4)
    with pytest.raises(tr.SpecError, match="needs at least 3"):
        tr.parse_nnodes("3:4", 2)


def test_layout_orders_by_rank_and_names_sort_like_ranks():
    nodes = tr.layout([{"host": "c-10", "rank": 10, "address": "10.0.0.12"},
                       {"host": "c-2", "rank": "2", "address": "10.0.0.4"},
                       {"host": "c-0", "rank": 0, "address": "10.0.0.2"}])
    assert [n["host"] for n in nodes] == ["c-0", "c-2", "c-10"]
    assert [n["node_rank"] for n in nodes] == [0, 1, 2]
    names = [n["rank_host"] for n in nodes]
    assert names == sorted(names) == ["aiinfra-rank-00000", "aiinfra-rank-00001", "aiinfra-rank-00002"]
    # no rank: inventory order
    assert [n["host"] for n in tr.layout([{"host": "b", "address": "x"}, {"host": "a", "address": "y"}])] == ["b", "a"]


@pytest.mark.parametrize("items, match", [
    ([], "group \\(gpu_nodes\\) is empty"),
    ([{"host": "a", "rank": 0, "address": "x"}, {"host": "b", "rank": 0, "address": "y"}], "both have"),
    ([{"host": "a", "rank": 0, "address": ""}], "no private address"),
    ([{"host": "a", "rank": "zero", "address": "x"}], "not a number"),
])
def test_layout_errors(items, match):
    with pytest.raises(tr.SpecError, match=match):
        tr.layout(items)


# -- log parsing ---------------------------------------------------------------------------------

AGENT = "I1122 12:47:43.079000 2114 torch/distributed/elastic/agent/server/api.py:%d] "
LOG = "\n".join([
    "W1122 12:47:41.608000 2114 torch/distributed/run.py:874] Setting OMP_NUM_THREADS environment variable",
    AGENT % 707 + "[default] Rendezvous'ing worker group",
    AGENT % 553 + "[default] Rendezvous complete for workers. Result:",
    AGENT % 553 + "  restart_count=0",
    AGENT % 553 + "  master_addr=aiinfra-rank-00000",
    AGENT % 553 + "  group_rank=1",
    AGENT % 553 + "  group_world_size=3",
    '[default0]:{"event": "joined", "time": 1.0, "rank": 2, "local_rank": 0, "world_size": 6, "restart": 0}',
    '[default1]:{"event": "joined", "time": 1.0, "rank": 3, "local_rank": 1, "world_size": 6, "restart": 0}',
    '[default0]:{"event": "resume", "time": 2.0, "step": 40, "from_rank": 0}',
    '[default0]:{"event": "step", "time": 3.0, "step": 41, "loss": 0.9, "samples_per_s": 100.0, "world_size": 6}',
    '[default0]:{"event": "checkpoint", "time": 3.5, "step": 50, "path": "/c/ckpt-00000050.pt"}',
    '[default0]:{"event": "step", "time": 4.0, "step": 50, "loss": 0.5, "samples_per_s": 120.0, "world_size": 6}',
    AGENT % 944 + "[default] Worker group FAILED. 1/1 attempts left; will restart worker group",
    AGENT % 553 + "[default] Rendezvous complete for workers. Result:",
    AGENT % 553 + "  restart_count=1",
    AGENT % 553 + "  group_rank=1",
    AGENT % 553 + "  group_world_size=3",
    "[default1]:[rank3]: RuntimeError: Connection closed by peer",
    '[default0]:{"event": "done", "time": 9.0, "step": 60, "loss": 0.4, "eval_acc": 0.9, "world_size": 6}',
    "",
])


@pytest.mark.parametrize("chunk", [7, 64, len(LOG)])
def test_log_state_in_chunks(chunk):
    state = tr.LogState(keep_steps=True)
    for i in range(0, len(LOG), chunk):
        state.feed(LOG[i:i + chunk])
    state.finish()
    snap = state.snapshot()
    assert snap["attempted"] is True
    assert snap["joined"] == {"round": 1, "group_rank": 1, "world": 3}
    assert snap["ranks"] == [2, 3] and snap["world_size"] == 6
    assert snap["restarts"] == 1 and snap["restart_requests"] == 1
    assert snap["resume"]["step"] == 40 and snap["first_step"]["step"] == 41
    assert snap["last_step"]["step"] == 60 and snap["done"]["eval_acc"] == 0.9
    assert snap["last_checkpoint"]["step"] == 50
    assert snap["last_metrics"]["event"] == "done"
    assert [s["step"] for s in state.steps] == [41, 50, 60]
    assert any("Connection closed by peer" in e for e in snap["errors"])
    assert snap["tail"][-1].startswith("[default0]:{\"event\": \"done\"")


def test_log_state_without_agent_info_lines_or_prefixes():
    state = tr.parse_log('{"step": 1, "loss": 2.0}\nnot json {\n{"event": "allreduce", "busbw_gbps": 1.5}\n')
    assert state.attempted is False and state.joined is None
    assert state.last_step == {"step": 1, "loss": 2.0}
    assert state.last_metrics["busbw_gbps"] == 1.5


def test_exit_codes():
    assert tr.exit_code({"code": "exited", "status": "0"}) == 0
    assert tr.exit_code({"code": "exited", "status": "1"}) == 1
    assert tr.exit_code({"code": "killed", "status": "TERM"}) == 143
    assert tr.exit_code({"code": "killed", "status": "KILL"}) == 137
    assert tr.exit_code(None) is None


# -- the watcher's verdict -----------------------------------------------------------------------

HOSTS = {"n0": 0, "n1": 1, "n2": 2}
SETTINGS = {"node_timeout": 20, "rdzv_timeout": 60, "timeout": 600}


def running(t=100.0, joined=True, **kw):
    log = {"attempted": True, "joined": {"round": 0} if joined else None, "ranks": [0] if joined else [],
           "tail": ["last line"], "errors": []}
    state = {"t": t, "active": True, "started": True, "exit": None, "lost": None, "log": log}
    state.update(kw)
    return state


def exited(status="0", result="success", at=110.0, t=111.0, **kw):
    code = "exited" if status.isdigit() else "killed"
    record = {"result": result if status == "0" else "exit-code", "code": code, "status": status, "time": at}
    return running(t=t, active=False, exit=record, **kw)


def test_running_until_everyone_succeeds():
    states = {"n0": running(), "n1": running(), "n2": running()}
    verdict = tr.decide(states, HOSTS, 105.0, 90.0, SETTINGS)
    assert not verdict["done"] and verdict["status"] == "running"
    states = {"n0": exited(), "n1": exited(), "n2": running()}
    assert not tr.decide(states, HOSTS, 112.0, 90.0, SETTINGS)["done"]
    states["n2"] = exited()
    verdict = tr.decide(states, HOSTS, 112.0, 90.0, SETTINGS)
    assert verdict["done"] and verdict["status"] == "succeeded"


def test_first_failure_is_named_and_a_survivor_exiting_0_does_not_count_as_success():
    states = {"n0": exited("0", at=120.0), "n1": exited("1", at=110.0), "n2": exited("1", at=112.0)}
    verdict = tr.decide(states, HOSTS, 121.0, 90.0, SETTINGS)
    assert verdict["done"] and verdict["status"] == "failed" and verdict["reason"] == "node"
    assert verdict["failed"] == ["n1", "n2"]
    assert verdict["message"].startswith("n1 (node rank 1) failed: torchrun ended with exit code 1")
    assert "n2 (failed)" in verdict["message"]


def test_a_lost_node_comes_first_and_a_silent_one_is_lost():
    states = {"n0": exited("1", at=101.0), "n1": running(lost="no answer within 15s", lost_at=100.0),
              "n2": running(t=101.5)}
    verdict = tr.decide(states, HOSTS, 102.0, 50.0, SETTINGS)
    assert verdict["failed"][0] == "n1" and "stopped answering: no answer within 15s" in verdict["message"]
    # a watcher that stopped writing for longer than node_timeout
    states = {"n0": running(t=130.0), "n1": running(t=100.0), "n2": running(t=130.0)}
    verdict = tr.decide(states, HOSTS, 130.5, 50.0, SETTINGS)
    assert verdict["done"] and verdict["failed"] == ["n1"] and "no answer for 30s" in verdict["message"]


def test_a_node_that_goes_silent_as_its_peers_fail_is_named_first():
    # n2 died; n0 and n1 failed a moment later (connection closed by peer) and said so at once
    states = {"n0": exited("1", at=110.0, t=110.5), "n1": exited("1", at=110.2, t=110.6), "n2": running(t=109.0)}
    waiting = tr.decide(states, HOSTS, 113.0, 50.0, SETTINGS)
    assert not waiting["done"]  # n2 gets a moment to report
    verdict = tr.decide(states, HOSTS, 121.0, 50.0, SETTINGS)  # settle: node_timeout / 2
    assert verdict["done"] and verdict["failed"] == ["n2", "n0", "n1"]
    assert verdict["message"].startswith("n2 (node rank 2) failed: stopped answering: no answer since its peers "
                                         "failed 11s ago")
    # n2 reporting its own failure in time makes it the cause by its exit time, not a lost node
    states["n2"] = exited("143", at=109.8, t=112.0)
    verdict = tr.decide(states, HOSTS, 112.5, 50.0, SETTINGS)
    assert verdict["failed"][0] == "n2" and "exit code 143" in verdict["message"]


def test_killed_and_timed_out_units():
    states = {"n0": running(t=111.5), "n1": exited("KILL"), "n2": running(t=111.5)}
    assert "killed by SIGKILL" in tr.decide(states, HOSTS, 112.0, 50.0, SETTINGS)["message"]
    states["n1"] = running(active=False, exit={"result": "timeout", "code": "killed", "status": "TERM",
                                               "time": 111.0}, timeout=600)
    verdict = tr.decide(states, HOSTS, 112.0, 50.0, SETTINGS)
    assert verdict["reason"] == "timeout" and "torchrun_timeout (600s)" in verdict["message"]
    states["n1"] = running(active=False, exit=None)
    assert "vanished" in tr.decide(states, HOSTS, 112.0, 50.0, SETTINGS)["message"]


def test_rendezvous_deadline_names_the_nodes_that_did_not_join():
    def states(t):
        return {"n0": running(t, joined=False), "n1": running(t, joined=False),
                "n2": running(t, joined=False, log={"attempted": False, "joined": None, "ranks": []},
                              probe={"endpoint": "10.0.0.2:29400", "ok": False, "error": "No route to host"})}
    assert not tr.decide(states(139.0), HOSTS, 140.0, 100.0, SETTINGS)["done"]  # 40s < 60s
    verdict = tr.decide(states(160.0), HOSTS, 161.0, 100.0, SETTINGS)
    assert verdict["done"] and verdict["reason"] == "rendezvous" and verdict["failed"] == ["n2"]
    assert "did not complete within torchrun_rdzv_timeout (60s)" in verdict["message"]
    assert "n2 (node rank 2): cannot reach the rendezvous endpoint 10.0.0.2:29400 (No route to host)" \
        in verdict["message"]
    assert "n0" not in verdict["message"].split("did not join:")[1]


def test_a_node_that_fails_before_the_rendezvous_completes_is_a_rendezvous_failure():
    states = {"n0": running(joined=False), "n1": running(joined=False),
              "n2": exited("1", log={"attempted": False, "joined": None, "ranks": [], "tail": ["conn failed"]})}
    verdict = tr.decide(states, HOSTS, 120.0, 100.0, SETTINGS)
    assert verdict["reason"] == "rendezvous"
    assert "did not join: n2 (node rank 2): torchrun ended with exit code 1" in verdict["message"]


def test_job_timeout_backstop():
    states = {h: running(t=700.0) for h in HOSTS}
    verdict = tr.decide(states, HOSTS, 700.0, 50.0, SETTINGS)
    assert verdict["done"] and verdict["reason"] == "timeout"


def test_rerun_plan():
    assert tr.rerun_plan([]) == "start"
    assert tr.rerun_plan([{"started": False}, {"started": False}]) == "start"
    ok = {"started": True, "active": False, "exit": {"result": "success", "code": "exited", "status": "0"}}
    bad = {"started": True, "active": False, "exit": {"result": "exit-code", "code": "exited", "status": "1"}}
    assert tr.rerun_plan([ok, dict(ok, active=True, exit=None)]) == "attach"
    assert tr.rerun_plan([ok, ok]) == "report"
    assert tr.rerun_plan([ok, bad]) == "restart"
    assert tr.rerun_plan([ok, {"started": True, "active": False, "exit": None}]) == "restart"


# -- the report ----------------------------------------------------------------------------------

def test_summary_aggregates_nodes():
    logs = {
        "n0": tr.parse_log(LOG),
        "n1": tr.parse_log(LOG.replace('"rank": 2', '"rank": 0').replace('"rank": 3', '"rank": 1')),
        "n2": tr.parse_log('[default0]:{"event": "joined", "rank": 4, "world_size": 6}\n'
                           '[default1]:{"event": "joined", "rank": 5, "world_size": 6}\n'),
    }
    nodes = [{"host": h, "node_rank": r, "address": "10.0.0.%d" % r, "nproc_per_node": 2,
              "state": exited("0", at=150.0, started_at=100.0), "log_path": "/runs/r1/%s/torchrun.log" % h}
             for h, r in HOSTS.items()]
    verdict = tr.decide(dict((n["host"], n["state"]) for n in nodes), HOSTS, 151.0, 90.0, SETTINGS)
    summary = tr.summarize({"run_id": "r1", "job": "example", "started": 90.0, "ended": 160.0}, nodes, verdict, logs)
    assert summary["status"] == "succeeded" and summary["exit_code"] == 0
    assert summary["world_size"] == 6 and summary["ranks_reported"] == [0, 1, 2, 3, 4, 5]
    assert [n["exit_code"] for n in summary["nodes"]] == [0, 0, 0]
    assert summary["nodes"][0]["duration_s"] == 50.0
    metrics = summary["metrics"]
    assert metrics["first_loss"] == 0.9 and metrics["last_loss"] == 0.4 and metrics["loss_went_down"] is True
    assert metrics["resumed_from_step"] == 40 and metrics["eval_acc"] == 0.9
    json.dumps(summary)  # summary.json
    text = tr.summary_text(summary, "/runs/r1/loss.png")
    assert "SUCCEEDED" in text and "world size 6" in text and "went down" in text and "loss.png" in text


def test_summary_of_a_failure_names_the_node_and_stopped_survivors():
    log = {"tail": ["boom: CUDA error"], "ranks": [2, 3], "attempted": True, "joined": {"round": 0}}
    states = {"n0": running(t=110.5), "n1": exited("1", at=110.0, log=log), "n2": running(t=110.5)}
    verdict = tr.decide(states, HOSTS, 111.0, 90.0, SETTINGS)
    stopped = {"action": "stopped", "exit": {"result": "signal", "code": "killed", "status": "TERM", "time": 112.0}}
    nodes = [{"host": h, "node_rank": r, "nproc_per_node": 2, "state": states[h],
              "stopped": stopped if h != "n1" else {}} for h, r in HOSTS.items()]
    summary = tr.summarize({"run_id": "r1"}, nodes, verdict, {})
    assert summary["status"] == "failed" and summary["failed_nodes"][0] == "n1"
    assert summary["exit_code"] == 1
    assert [n["phase"] for n in summary["nodes"]] == ["stopped", "failed", "stopped"]
    assert summary["nodes"][0]["exit_code"] == 143
    msg = tr.failure_message(summary)
    assert "n1 (node rank 1) failed: torchrun ended with exit code 1" in msg
    assert "boom: CUDA error" in msg and "Stopped the job on every node." in msg
    assert "every node but n2, which could not be reached or stopped" in tr.failure_message(summary, ["n2"])


# -- settings, node names, the watcher's poll ------------------------------------------------------

GOOD = {"script": "/x/train.py", "module": "", "nproc_per_node": "auto", "cpu_nproc_per_node": 1, "rdzv_port": 29400,
        "rdzv_timeout": 180, "max_restarts": 0, "timeout": 3600, "nnodes": "", "run_id": "", "job_name": "example",
        "state": "started"}


def test_good_settings_pass():
    assert tr.check_settings(GOOD, True) == []
    assert tr.check_settings(dict(GOOD, script="", module="pkg.train", nproc_per_node=8, nnodes="2:4")) == []


@pytest.mark.parametrize("change, message", [
    ({"script": "/nope.py"}, "torchrun_script /nope.py does not exist on the controller"),
    ({"module": "pkg.train"}, "set exactly one of torchrun_script"),
    ({"script": ""}, "set exactly one of torchrun_script"),
    ({"nproc_per_node": 0}, "torchrun_nproc_per_node must be 'auto' or at least 1 (got 0)"),
    ({"nproc_per_node": "many"}, "torchrun_nproc_per_node must be 'auto' or at least 1 (got 'many')"),
    ({"cpu_nproc_per_node": 0}, "torchrun_cpu_nproc_per_node must be at least 1 (got 0)"),
    ({"rdzv_port": 70000}, "torchrun_rdzv_port must be a number from 1 to 65535 (got 70000)"),
    ({"max_restarts": -1}, "torchrun_max_restarts must be at least 0 (got -1)"),
    ({"timeout": 0}, "torchrun_timeout must be at least 1 (got 0)"),
    ({"nnodes": "4:2x"}, "torchrun_nnodes must be empty (every node), N or MIN:MAX (got '4:2x')"),
    ({"run_id": "a b"}, "torchrun_run_id must be 1-64 letters"),
    ({"job_name": ""}, "torchrun_job_name must be 1-64 letters"),
    ({"state": "stopped"}, "torchrun_state=stopped needs torchrun_run_id"),
])
def test_bad_settings_are_named(change, message):
    errors = tr.check_settings(dict(GOOD, **change), script_exists=change.get("script") != "/nope.py")
    assert any(message in e for e in errors), errors


def test_all_problems_at_once():
    assert len(tr.check_settings(dict(GOOD, nproc_per_node=0, rdzv_port=0, timeout=0), True)) == 3


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


def test_poll_script_and_parse(tmp_path):
    import subprocess
    (tmp_path / "torchrun.log").write_text("one\ntwo \u00fc\npart")
    (tmp_path / "exit.json").write_text('{"result": "exit-code", "code": "exited", "status": "1", "time": 2.5}\n')
    script = tr.poll_script(str(tmp_path), "aiinfra-torchrun-none.service", 0, wait=0, probe="127.0.0.1:1")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    res = tr.parse_poll(out, "127.0.0.1:1")
    assert res["active"] is False and res["exit"]["status"] == "1"
    size = len("one\ntwo \u00fc\npart".encode())
    assert res["log_start"] == 0 and res["log_offset"] == size and res["log_chunk"] == "one\ntwo \u00fc\npart"
    assert res["probe"]["ok"] is False and res["probe"]["endpoint"] == "127.0.0.1:1"
    # from an offset, bounded, and a rotated log starts over
    res = tr.parse_poll(subprocess.run(["sh", "-c", tr.poll_script(str(tmp_path), "u", 4, max_bytes=3)],
                                       capture_output=True, text=True, check=True).stdout)
    assert res["log_start"] == size - 3 and res["log_chunk"] == "art"
    res = tr.parse_poll(subprocess.run(["sh", "-c", tr.poll_script(str(tmp_path), "u", size + 100)],
                                       capture_output=True, text=True, check=True).stdout)
    assert res["log_start"] == 0
    with pytest.raises(ValueError):
        tr.parse_poll("sudo: a password is required\n")
