"""A TensorFlow job through the torchrun machinery (torchrun_framework tensorflow): the plan's checks and launch
specs, the node command (one python per node, TF_CONFIG), the firewall, the joined signal of the watch."""

from __future__ import annotations

import json
import shlex

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import torchrun as node
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import SpecError
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import plan as tr
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.log import parse_log
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.report import summary_text
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.verdict import NodeState, decide

NODES = [{"host": "b", "rank": "1", "address": "10.0.0.3"}, {"host": "a", "rank": 0, "address": "10.0.0.2"},
         {"host": "c", "rank": 2, "address": "fd00::4"}]
GOOD = {"script": "/x/train.py", "module": "", "nproc_per_node": "auto", "cpu_nproc_per_node": 1, "rdzv_port": 29400,
        "rdzv_timeout": 180, "max_restarts": 0, "timeout": 3600, "stop_timeout": 15, "nnodes": "", "run_id": "",
        "job_name": "example", "state": "started", "workdir": "/w/jobs/example", "checkpoint_dir": "/w/jobs/example/ck",
        "script_args": "--steps 60", "env": {}, "docker_args": [], "docker_mounts": []}
TF = dict(GOOD, framework=" TensorFlow ", tf_worker_port="29411", tf_python="/opt/aiinfra/tensorflow/bin/python")


def test_pytorch_stays_the_default_and_its_specs_say_so():
    planned = tr.plan(NODES, GOOD, True)
    assert planned["settings"]["framework"] == "pytorch"
    assert all(spec["framework"] == "pytorch" for spec in planned["specs"].values())
    record = tr.plan_record(NODES, dict(GOOD, script=__file__), cwd="/")
    assert record["rdzv_endpoint"] == "10.0.0.2:29400"


def test_a_tensorflow_plan_types_what_users_typed_and_gives_every_node_the_workers():
    planned = tr.plan(NODES, TF, True)
    assert planned["settings"]["framework"] == "tensorflow" and planned["settings"]["tf_worker_port"] == 29411
    specs = planned["specs"]
    assert [specs[h]["node_rank"] for h in ("a", "b", "c")] == [0, 1, 2]
    for spec in specs.values():
        assert (spec["framework"], spec["python"], spec["worker_port"]) == (
            "tensorflow", "/opt/aiinfra/tensorflow/bin/python", 29411)
        assert [h["address"] for h in spec["rank_hosts"]] == ["10.0.0.2", "10.0.0.3", "fd00::4"]
    # the watch probes rank 0's worker from every node
    assert tr.plan_record(NODES, dict(TF, script=__file__), cwd="/")["rdzv_endpoint"] == "10.0.0.2:29411"


@pytest.mark.parametrize("change, message", [
    ({"framework": "jax"}, "unknown framework 'jax': torchrun_framework (gpu_cluster_framework in "
                           "playbooks/train.yml) must be pytorch or tensorflow"),
    ({"tf_worker_port": "70000"}, "torchrun_tf_worker_port must be a number from 1 to 65535 (got '70000')"),
    ({"tf_worker_port": "port"}, "torchrun_tf_worker_port must be a number from 1 to 65535 (got 'port')"),
    ({"tf_python": "bin/python"}, "torchrun_tf_python must be an absolute path"),
    ({"docker_image": "nvcr.io/nvidia/pytorch:24.05-py3"}, "Docker mode is for torchrun jobs"),
    ({"max_restarts": "2"}, "a TensorFlow job has none"),
    ({"nnodes": "2:4"}, "a TensorFlow cluster has a fixed size"),
])
def test_bad_tensorflow_settings_fail_the_plan_naming_them(change, message):
    with pytest.raises(SpecError) as err:
        tr.plan(NODES, dict(TF, **change), True)
    assert message in str(err.value)


def test_a_missing_script_fails_the_tensorflow_plan_too():
    with pytest.raises(SpecError, match="torchrun_script /x/train.py does not exist on the controller"):
        tr.plan(NODES, TF, False)


def node_spec(host, **kw):
    spec = dict(tr.plan(NODES, TF, True)["specs"][host], run_id="r1", rdzv_id="r1-abc", log_dir="/w/runs/r1/ranks",
                output_dir="/w/runs/r1/outputs")
    spec.update(kw)
    return spec


def test_the_node_command_is_one_python_with_tf_config_in_rank_order():
    built = node.build_command(node_spec("b"), gpu_count=8, ifname="eth0")
    assert built["argv"] == ["/opt/aiinfra/tensorflow/bin/python", "/w/jobs/example/train.py", "--steps", "60"]
    assert built["nproc_per_node"] == 1  # one process per node, whatever its GPUs
    config = json.loads(built["env"]["TF_CONFIG"])
    assert config == {"cluster": {"worker": ["10.0.0.2:29411", "10.0.0.3:29411", "[fd00::4]:29411"]},
                      "task": {"type": "worker", "index": 1}}
    env = built["env"]
    assert env["AIINFRA_CHECKPOINT_DIR"] == "/w/jobs/example/ck" and env["AIINFRA_RUN_ID"] == "r1"
    assert "torchrun" not in built["command"] and "TF_CONFIG=" in built["command"]
    # the unit's script runs it as the job's user, TF_CONFIG exported
    script = node.launch_script(dict(node_spec("b"), user="aiinfra-job", gid=990, home="/w"), built)
    assert "export TF_CONFIG=%s" % shlex.quote(env["TF_CONFIG"]) in script.splitlines()
    assert script.splitlines()[-1].endswith(" -- /opt/aiinfra/tensorflow/bin/python /w/jobs/example/train.py "
                                            "--steps 60")
    assert json.loads(node.build_command(node_spec("a"))["env"]["TF_CONFIG"])["task"]["index"] == 0


def test_module_mode_and_bad_node_specs():
    built = node.build_command(node_spec("a", script=None, module="pkg.train"))
    assert built["argv"][:3] == ["/opt/aiinfra/tensorflow/bin/python", "-m", "pkg.train"]
    with pytest.raises(SpecError, match="Docker mode"):
        node.build_command(node_spec("a", docker={"image": "x"}))
    with pytest.raises(SpecError, match="torchrun_tf_worker_port 0 is not a TCP port"):
        node.build_command(node_spec("a", worker_port=0))
    with pytest.raises(SpecError, match="framework 'jax'"):
        node.LaunchSpec.from_dict(dict(tr.plan(NODES, TF, True)["specs"]["a"], framework="jax"))


def test_the_joined_event_of_a_tensorflow_job_is_its_rendezvous():
    text = ("INFO:tensorflow:Enabled multi-worker collective ops with available devices: ['/job:worker/...']\n"
            '{"event": "joined", "rank": 1, "world_size": 2}\n')
    log = parse_log(text).snapshot()
    assert log["attempted"] and log["ranks"] == [1] and log["joined"] is None  # no torchrun agent lines
    starting = parse_log(text.splitlines()[0] + "\n").snapshot()
    assert starting["attempted"] and not starting["ranks"]

    def state(rank, snapshot):
        return NodeState(host="n%d" % rank, node_rank=rank, active=True, started=True, t=100.0, log=snapshot)

    settings = {"node_timeout": 20, "rdzv_timeout": 30, "timeout": 3600}
    # both workers logged "joined": past the rendezvous timeout, nothing is wrong
    assert not decide({"n0": state(0, log), "n1": state(1, log)}, 100.0, 0.0, settings).done
    # one never did: the rendezvous timeout names it
    verdict = decide({"n0": state(0, log), "n1": state(1, starting)}, 100.0, 0.0, settings)
    assert verdict.done and verdict.reason == "rendezvous" and verdict.failed == ["n1"]


def test_the_report_names_a_tensorflow_run():
    summary = {"run_id": "r1", "job": "example", "status": "succeeded", "duration_s": 28.0, "nnodes": 2,
               "world_size": 2, "ranks_reported": [0, 1], "exit_code": 0, "nodes": []}
    assert summary_text(dict(summary, framework="tensorflow")).startswith(
        "TensorFlow run r1 (job example): SUCCEEDED in 28.0s")
    assert summary_text(summary).startswith("torchrun run r1 (job example): SUCCEEDED")
