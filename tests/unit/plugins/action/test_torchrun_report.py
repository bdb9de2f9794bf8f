"""The run report's plot: a real PNG from the summary's steps."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.action.torchrun_report import pick_verdict, plot_loss


def test_plot_is_a_png(tmp_path):
    summary = {"run_id": "r1", "status": "succeeded", "nnodes": 2, "world_size": 4,
               "metrics": {"resumed_from_step": 20},
               "steps": [{"step": s, "loss": 2.0 / s} for s in range(1, 60, 5)]}
    path, why = plot_loss(summary, str(tmp_path / "loss.png"))
    assert why is None
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_no_steps_no_plot(tmp_path):
    path, why = plot_loss({"steps": []}, str(tmp_path / "loss.png"))
    assert path is None and "no step/loss" in why


def test_failure_verdict_wins_and_lost_watchers_come_last():
    hosts = {"a": 0, "b": 1}
    ok = {"status": "succeeded"}
    bad = {"status": "failed", "message": "b failed"}
    assert pick_verdict({"a": ok, "b": bad}, hosts, {}) is bad
    assert pick_verdict({"a": ok, "b": ok}, hosts, {"a": {"lost": "x"}}) is ok
    assert pick_verdict({}, hosts, {})["status"] == "failed"
