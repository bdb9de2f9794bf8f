"""Planning a torchrun job: settings as users type them, the node layout, launch specs, re-runs."""

from __future__ import annotations

import re

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import SpecError
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import plan as tr


def test_nnodes():
    assert tr.parse_nnodes("", 4) == "4"
    assert tr.parse_nnodes(None, 2) == "2"
    assert tr.parse_nnodes("2:4", 4) == "2:4"
    for bad in ("0", "4:2", "x", "1:"):
        with pytest.raises(SpecError):
            tr.parse_nnodes(bad, 4)
    with pytest.raises(SpecError, match="needs at least 3"):
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
    with pytest.raises(SpecError, match=match):
        tr.layout(items)


GOOD = {"script": "/x/train.py", "module": "", "nproc_per_node": "auto", "cpu_nproc_per_node": 1, "rdzv_port": 29400,
        "rdzv_timeout": 180, "max_restarts": 0, "timeout": 3600, "nnodes": "", "run_id": "", "job_name": "example",
        "state": "started"}


def test_good_settings_pass():
    assert tr.check_settings(GOOD, True)[1] == []
    assert tr.check_settings(dict(GOOD, script="", module="pkg.train", nproc_per_node=8, nnodes="2:4"))[1] == []


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
    errors = tr.check_settings(dict(GOOD, **change), script_exists=change.get("script") != "/nope.py")[1]
    assert any(message in e for e in errors), errors


def test_all_problems_at_once():
    assert len(tr.check_settings(dict(GOOD, nproc_per_node=0, rdzv_port=0, timeout=0), True)[1]) == 3


def test_rerun_plan():
    assert tr.rerun_plan([]) == "start"
    assert tr.rerun_plan([{"started": False}, {"started": False}]) == "start"
    ok = {"started": True, "active": False, "exit": {"result": "success", "code": "exited", "status": "0"}}
    bad = {"started": True, "active": False, "exit": {"result": "exit-code", "code": "exited", "status": "1"}}
    assert tr.rerun_plan([ok, dict(ok, active=True, exit=None)]) == "attach"
    assert tr.rerun_plan([ok, ok]) == "report"
    assert tr.rerun_plan([ok, bad]) == "restart"
    assert tr.rerun_plan([ok, {"started": True, "active": False, "exit": None}]) == "restart"


# -- what users type: a list as one string, numbers as strings ------------------------------------

@pytest.mark.parametrize("value, words", [
    ("--steps 60", ["--steps", "60"]),
    ("--name 'a b' --lr=0.1,0.2", ["--name", "a b", "--lr=0.1,0.2"]),
    (["--steps", 60], ["--steps", "60"]),
    ("", []),
    (None, []),
])
def test_list_settings_are_split_like_a_shell(value, words):
    assert tr.as_words("script_args", value) == words


@pytest.mark.parametrize("value, message", [
    ("--name 'unclosed", "torchrun_script_args: cannot split \"--name 'unclosed\" like a shell would (No closing "
                         "quotation); give torchrun_script_args as a list"),
    ({"steps": 60}, "torchrun_script_args must be a list of strings"),
    ([["--steps", 60]], "torchrun_script_args must be a list of strings"),
])
def test_list_settings_that_cannot_be_words_name_the_variable(value, message):
    with pytest.raises(SpecError) as err:
        tr.as_words("script_args", value)
    assert message in str(err.value)


def test_env_as_a_mapping_or_words():
    assert tr.as_env("A=1 B='x y'") == {"A": "1", "B": "x y"}
    assert tr.as_env('{"A": "1"}') == {"A": "1"}
    assert tr.as_env({"A": 1}) == {"A": 1}
    with pytest.raises(SpecError, match="torchrun_env must be a mapping"):
        tr.as_env("A B")


def test_plan_converts_what_users_typed_and_builds_each_nodes_spec():
    settings = dict(GOOD, script_args="--steps 60", rdzv_port="29500", timeout="120", stop_timeout="15",
                    max_restarts="1", cpu_nproc_per_node="2", nproc_per_node=" auto ", env="OMP_NUM_THREADS=1",
                    docker_args="", docker_mounts=None, workdir="/w/jobs/example", bin="/opt/t/bin/torchrun",
                    user="gpuadmin")
    planned = tr.plan([{"host": "b", "rank": "1", "address": "10.0.0.3"},
                       {"host": "a", "rank": 0, "address": "10.0.0.2"}], settings, True)
    assert [n["host"] for n in planned["layout"]] == ["a", "b"]
    spec_a, spec_b = planned["specs"]["a"], planned["specs"]["b"]
    assert spec_a["script_args"] == ["--steps", "60"] and spec_a["rdzv_port"] == 29500
    assert spec_a["timeout"] == 120 and spec_a["max_restarts"] == 1 and spec_a["cpu_nproc_per_node"] == 2
    assert spec_a["nproc_per_node"] == "auto" and spec_a["env"] == {"OMP_NUM_THREADS": "1"}
    assert spec_a["script"] == "/w/jobs/example/train.py" and spec_a["nnodes"] == "2"
    assert (spec_a["node_rank"], spec_a["rdzv_is_host"], spec_b["node_rank"], spec_b["rdzv_is_host"]) == (
        0, True, 1, False)
    assert spec_b["rdzv_host"] == "10.0.0.2" and spec_b["local_addr"] == "aiinfra-rank-00001"
    assert spec_a["docker"] is None  # a LaunchSpec: every field, Docker off


def test_plan_names_every_bad_setting():
    with pytest.raises(SpecError) as err:
        tr.plan([{"host": "a", "address": "x"}], dict(GOOD, rdzv_port="port", script_args=5, workdir="/w"), True)
    assert "torchrun_rdzv_port must be a number from 1 to 65535 (got 'port')" in str(err.value)
    assert "torchrun_script_args must be a list of strings" in str(err.value)


# -- checkpoints in object storage (torchrun_checkpoint_uri) --------------------------------------------------------

CKPT = dict(GOOD, workdir="/w/jobs/example", stop_timeout=15, checkpoint_dir="/w/jobs/example/checkpoints", user="gpuadmin",
            checkpoint_uri="s3://ml-ckpt/jobs/example", checkpoint_interval="3", checkpoint_stable_seconds=2,
            checkpoint_final_timeout="90", checkpoint_client_dir="/opt/aiinfra/storage")


def test_checkpoint_spec_travels_in_every_nodes_spec():
    planned = tr.plan([{"host": "a", "rank": 0, "address": "10.0.0.2"}, {"host": "b", "rank": 1, "address": "x"}],
                      CKPT, True)
    ckpt = planned["specs"]["b"]["checkpoint"]
    assert ckpt == planned["specs"]["a"]["checkpoint"]
    assert ckpt["uri"] == "s3://ml-ckpt/jobs/example" and ckpt["dir"] == "/w/jobs/example/checkpoints"
    assert (ckpt["interval"], ckpt["stable_seconds"], ckpt["final_timeout"]) == (3, 2, 90)
    assert ckpt["env_file"] == "/etc/aiinfra/torchrun/example.storage.env"
    assert ckpt["python"].startswith("/opt/aiinfra/storage/")
    # no URI: checkpoints stay on the nodes
    assert tr.plan([{"host": "a", "address": "x"}], dict(CKPT, checkpoint_uri=""), True)["specs"]["a"][
        "checkpoint"] is None


@pytest.mark.parametrize("uri, message", [
    ("/data/ckpt", "torchrun_checkpoint_uri: '/data/ckpt' is not an object storage URI"),
    ("ftp://bucket/x", "the scheme 'ftp' is not an object storage scheme"),
    ("s3:///prefix", "names no bucket"),
    ("az://Bad_Container/x", "is not a valid container name (Azure Blob Storage)"),
    ("s3://Bad_Bucket/x", "is not a valid bucket name"),
])
def test_bad_checkpoint_uri_fails_before_anything_starts(uri, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        tr.plan([{"host": "a", "address": "x"}], dict(CKPT, checkpoint_uri=uri), True)


def test_bad_output_uri_fails_before_anything_starts():
    with pytest.raises(SpecError, match=re.escape("torchrun_output_uri: 'gs://Bucket/preds': 'Bucket' is not a valid")):
        tr.plan([{"host": "a", "address": "x"}], dict(CKPT, output_uri="gs://Bucket/preds"), True)
    for uri in ("s3://preds/out/", "gs://preds/out/", "az://preds/out/"):
        assert tr.plan([{"host": "a", "address": "x"}], dict(CKPT, output_uri=uri), True)["specs"]["a"]


def test_checkpoint_numbers_and_dir_are_checked():
    errors = tr.check_settings(dict(CKPT, checkpoint_interval="0", checkpoint_stable_seconds="soon",
                                    checkpoint_dir=""), True)[1]
    assert "torchrun_checkpoint_interval must be at least 1 (got '0')" in errors
    assert "torchrun_checkpoint_stable_seconds must be at least 1 (got 'soon')" in errors
    assert any("torchrun_checkpoint_uri needs torchrun_checkpoint_dir" in e for e in errors)
