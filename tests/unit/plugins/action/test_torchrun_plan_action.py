"""The torchrun_plan action: one record for the attempt (the run id, the layout, each node's LaunchSpec, where the run
lives), every bad setting named at once, and nothing secret in it."""

from __future__ import annotations

import os
import random
from unittest import mock

import pytest

from ansible.errors import AnsibleActionFail
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task

from ansible_collections.aiinfra.gpu_cluster.plugins.action.torchrun_plan import ActionModule
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import LaunchSpec, RunDir, SpecError

SECRET = "hf_never-in-a-plan"


def run_plan(args, hostvars, play_hosts=None):
    task = Task()
    task.args = args
    connection = mock.MagicMock()
    connection._shell.tmpdir = "/tmp/unused"  # the plan never touches a node
    action = ActionModule(task, connection, PlayContext(), None, None, None)
    task_vars = {"hostvars": hostvars, "ansible_play_hosts_all": play_hosts or list(hostvars)}
    return action.run(task_vars=task_vars)


def hostvars(n):
    # inventory order is not rank order
    return dict(("node-%d" % i, {"inventory_hostname": "node-%d" % i, "gpu_cluster_rank": n - 1 - i,
                                 "gpu_cluster_private_address": "10.0.0.%d" % (10 + i)}) for i in range(n))


def settings(tmp_path, **extra):
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    base = {"torchrun_script": str(script), "torchrun_module": "", "torchrun_script_args": "--steps 3",
            "torchrun_nproc_per_node": "auto", "torchrun_cpu_nproc_per_node": 1, "torchrun_rdzv_port": 29400,
            "torchrun_rdzv_timeout": 180, "torchrun_max_restarts": 0, "torchrun_timeout": 3600,
            "torchrun_stop_timeout": 15, "torchrun_nnodes": "", "torchrun_run_id": "", "torchrun_job_name": "demo",
            "torchrun_state": "started", "torchrun_workdir": "/var/lib/aiinfra/torchrun/jobs/demo",
            "torchrun_base_dir": "/srv/tr", "torchrun_runs_dir": str(tmp_path / "runs"), "torchrun_run_dir": "",
            "torchrun_secret_env": {"HF_TOKEN": SECRET}}
    base.update(extra)
    return base


def test_one_record_for_the_whole_attempt(tmp_path):
    result = run_plan({"settings": settings(tmp_path)}, hostvars(3))
    assert not result.get("failed") and result["changed"] is False
    assert [n["host"] for n in result["layout"]] == ["node-2", "node-1", "node-0"]
    assert result["hosts"] == {"node-2": 0, "node-1": 1, "node-0": 2}
    assert result["rdzv_endpoint"] == "10.0.0.12:29400"
    run_id = result["run_id"]
    assert RunDir(None, run_id)  # a valid run id
    assert result["rdzv_id"].startswith(run_id + "-") and result["rdzv_id"] != run_id
    assert result["run_dir"] == os.path.realpath(str(tmp_path / "runs" / run_id))
    run = RunDir("/srv/tr", run_id)
    assert result["node"]["unit"] == run.unit and result["node"]["uploader_unit"] == run.uploader_unit
    assert result["node"]["checkpoints"] == run.checkpoints and result["node"]["outputs_archive"].startswith(run.path)
    # every node's spec is a LaunchSpec, and reads back as one
    for host, spec in result["specs"].items():
        back = LaunchSpec.from_dict(spec)
        assert back.node_rank == result["hosts"][host] and back.rdzv_host == "10.0.0.12"
        assert back.rdzv_is_host == (back.node_rank == 0)
        assert back.script_args == ["--steps", "3"] and back.script == "/var/lib/aiinfra/torchrun/jobs/demo/train.py"
        assert back.secret_env_names == ["HF_TOKEN"]
    assert result["script"] == str(tmp_path / "train.py")
    assert SECRET not in repr(result)


def test_run_id_given_or_a_recovery_of_the_first(tmp_path):
    given = run_plan({"settings": settings(tmp_path, torchrun_run_id="exp-7")}, hostvars(2))
    assert given["run_id"] == "exp-7" and given["run_dir"].endswith("/runs/exp-7")
    again = run_plan({"settings": settings(tmp_path, torchrun_run_id="exp-7"),
                      "attempts": [{"run_id": "exp-7"}, {"run_id": "exp-7-r1"}]}, hostvars(2))
    assert again["run_id"] == "exp-7-r2"


def test_fresh_run_ids_differ(tmp_path):
    ids = set(run_plan({"settings": settings(tmp_path)}, hostvars(1))["run_id"] for dummy in range(5))
    assert len(ids) == 5


def test_every_problem_at_once(tmp_path):
    bad = settings(tmp_path, torchrun_rdzv_port="99999", torchrun_job_name="no spaces", torchrun_module="x.y",
                   torchrun_env={"API_TOKEN": "x"})
    with pytest.raises(AnsibleActionFail) as err:
        run_plan({"settings": bad}, hostvars(2))
    msg = str(err.value)
    for part in ("torchrun_rdzv_port", "torchrun_job_name", "exactly one of torchrun_script", "API_TOKEN"):
        assert part in msg


def test_a_missing_script_and_a_bad_layout_are_named(tmp_path):
    with pytest.raises(AnsibleActionFail, match="does not exist on the controller"):
        run_plan({"settings": settings(tmp_path, torchrun_script=str(tmp_path / "nope.py"))}, hostvars(1))
    hv = hostvars(2)
    hv["node-1"]["gpu_cluster_rank"] = hv["node-0"]["gpu_cluster_rank"]
    with pytest.raises(AnsibleActionFail, match="both have gpu_cluster_rank"):
        run_plan({"settings": settings(tmp_path)}, hv)


def test_only_the_hosts_asked_for(tmp_path):
    result = run_plan({"settings": settings(tmp_path), "hosts": ["node-0"]}, hostvars(3))
    assert list(result["specs"]) == ["node-0"] and result["specs"]["node-0"]["nnodes"] == "1"


def test_launch_spec_refuses_unknown_missing_and_bad_fields(tmp_path):
    spec = run_plan({"settings": settings(tmp_path)}, hostvars(1))["specs"]["node-0"]
    with pytest.raises(SpecError, match="unknown fields: colour"):
        LaunchSpec.from_dict(dict(spec, colour="red"))
    with pytest.raises(SpecError, match="lacks workdir"):
        LaunchSpec.from_dict(dict((k, v) for k, v in spec.items() if k != "workdir"))
    with pytest.raises(SpecError, match="lacks user"):
        LaunchSpec.from_dict(dict(spec, user=""))
    with pytest.raises(SpecError, match="must be an absolute path"):
        LaunchSpec.from_dict(dict(spec, workdir="rel/dir"))
    assert LaunchSpec.from_dict(spec).to_dict() == spec


def test_rand_is_used_for_ids(tmp_path):
    from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.plan import make_run_id
    import datetime
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert make_run_id("", (), now=now, rand=random.Random(1)).startswith("20260102-030405-")
