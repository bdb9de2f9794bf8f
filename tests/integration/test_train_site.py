"""site.yml end to end on 2 fresh local nodes: provision -> configure -> verify -> train.

The run report must show world size = nodes x processes and a loss that went down; verify.yml must
have checked that every node runs the same torch and that an all-reduce over every rank is right.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_playbook, write_inventory

pytestmark = pytest.mark.slow


def test_site_end_to_end_on_two_fresh_nodes(tmp_path, cluster_name):
    runs = tmp_path / "runs"
    inventory = write_inventory(tmp_path, cluster_name, 2, extra={
        "torchrun_cpu_nproc_per_node": 2, "torchrun_runs_dir": str(runs)})
    proc = run_playbook("site.yml", inventory=inventory, timeout=1800)
    out = " ".join(proc.stdout.split())
    summaries = dict((s["job"], s) for s in (json.loads(p.read_text()) for p in runs.glob("*/summary.json")))
    assert sorted(summaries) == ["example", "verify"], sorted(summaries)

    verify = summaries["verify"]
    assert verify["status"] == "succeeded" and verify["world_size"] == 4
    assert all(n["last_metrics"]["all_ranks_ok"] and n["last_metrics"]["got"] == 10.0 for n in verify["nodes"])
    assert "every node runs torch 2.13.0+cpu" in out
    assert "sum correct" in out and "bus bandwidth" in out

    train = summaries["example"]
    assert train["status"] == "succeeded" and train["exit_code"] == 0
    assert train["nnodes"] == 2 and train["world_size"] == 4 and train["ranks_reported"] == [0, 1, 2, 3]
    assert [n["exit_code"] for n in train["nodes"]] == [0, 0]
    metrics = train["metrics"]
    assert metrics["loss_went_down"] and metrics["last_loss"] < 0.5 * metrics["first_loss"], metrics
    assert metrics["eval_acc"] > 0.6, metrics  # chance is 0.125
    run_dir = runs / train["run_id"]
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "torchrun run %s (job example): SUCCEEDED" % train["run_id"] in proc.stdout
    assert "2 nodes, world size 4, ranks reported: 4/4, aggregate exit code 0" in proc.stdout
