"""The run report: summary.json from the verdict and the logs, the text, the failure message, loss.png."""

from __future__ import annotations

import json

from ansible_collections.aiinfra.gpu_cluster.plugins.action.torchrun_report import verdict_of as watch_verdict
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import report as tr
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.log import parse_log
from test_log import LOG
from test_verdict import HOSTS, exited, running, verdict_of


def test_summary_aggregates_nodes():
    logs = {
        "n0": parse_log(LOG),
        "n1": parse_log(LOG.replace('"rank": 2', '"rank": 0').replace('"rank": 3', '"rank": 1')),
        "n2": parse_log('[default0]:{"event": "joined", "rank": 4, "world_size": 6}\n'
                        '[default1]:{"event": "joined", "rank": 5, "world_size": 6}\n'),
    }
    nodes = [{"host": h, "node_rank": r, "address": "10.0.0.%d" % r, "nproc_per_node": 2,
              "state": exited("0", at=150.0, started_at=100.0), "log_path": "/runs/r1/%s/torchrun.log" % h}
             for h, r in HOSTS.items()]
    verdict = verdict_of(dict((n["host"], n["state"]) for n in nodes), 151.0, 90.0)
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
    verdict = verdict_of(states, 111.0, 90.0)
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


def test_plot_is_a_png(tmp_path):
    summary = {"run_id": "r1", "status": "succeeded", "nnodes": 2, "world_size": 4,
               "metrics": {"resumed_from_step": 20},
               "steps": [{"step": s, "loss": 2.0 / s} for s in range(1, 60, 5)]}
    path, why = tr.plot_loss(summary, str(tmp_path / "loss.png"))
    assert why is None
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_no_steps_no_plot(tmp_path):
    path, why = tr.plot_loss({"steps": []}, str(tmp_path / "loss.png"))
    assert path is None and "no step/loss" in why


def test_a_watch_without_a_verdict_is_a_failure():
    done = {"done": True, "status": "succeeded", "failed": [], "message": "ok", "phases": {"a": "succeeded"}}
    assert watch_verdict({"verdict": done}, {"a": 0}) is done
    verdict = watch_verdict({}, {"b": 1, "a": 0})
    assert verdict["status"] == "failed" and verdict["failed"] == ["a", "b"]
    assert verdict["message"] == "the watch ended without a verdict"


PREDICT_LOG = """[default0]:{"event": "joined", "rank": 0, "world_size": 4}
[default1]:{"event": "joined", "rank": 1, "world_size": 4}
[default0]:{"event": "model", "source": "rank 0: /ck/ckpt-00000300.pt", "step": 300}
[default0]:{"event": "predicted", "rank": 0, "samples": 500, "seconds": 0.5, "samples_per_s": 1000.0}
[default0]:{"event": "done", "samples": 2000, "seconds": 0.8, "world_size": 4, "samples_per_s": 2500.0, "merged": "/o/predictions.jsonl"}
"""


def test_a_prediction_job_reports_its_throughput_and_outputs():
    logs = {"n0": parse_log(PREDICT_LOG), "n1": parse_log('[default0]:{"event": "joined", "rank": 2, "world_size": 4}\n'
                                                          '[default1]:{"event": "joined", "rank": 3, "world_size": 4}\n')}
    hosts = {"n0": 0, "n1": 1}
    nodes = [{"host": h, "node_rank": r, "nproc_per_node": 2, "state": exited("0", at=150.0, started_at=100.0)}
             for h, r in hosts.items()]
    verdict = verdict_of(dict((n["host"], n["state"]) for n in nodes), 151.0, 90.0)
    summary = tr.summarize({"run_id": "p1", "job": "predict", "started": 90.0, "ended": 160.0}, nodes, verdict, logs)
    metrics = summary["metrics"]
    assert summary["status"] == "succeeded" and metrics["steps_logged"] == 0
    assert metrics["samples"] == 2000 and metrics["samples_per_s"] == 2500.0 and metrics["seconds"] == 0.8
    assert metrics["merged"] == "/o/predictions.jsonl"
    summary["outputs"] = {"n0": "/runs/p1/n0/outputs", "n1": "/runs/p1/n1/outputs"}
    text = tr.summary_text(summary)
    assert "2000 samples in 0.8s over 4 ranks: 2500.0 samples/s; merged into /o/predictions.jsonl" in text
    assert "outputs: n0 -> /runs/p1/n0/outputs, n1 -> /runs/p1/n1/outputs" in text
    assert "loss" not in text


def test_a_training_job_keeps_its_step_throughput():
    summary = tr.summarize({"run_id": "r1", "job": "example", "started": 90.0, "ended": 160.0},
                           [{"host": "n0", "node_rank": 0, "nproc_per_node": 2,
                             "state": exited("0", at=150.0, started_at=100.0)}],
                           verdict_of({"n0": exited("0", at=150.0)}, 151.0, 90.0), {"n0": parse_log(LOG)})
    assert summary["metrics"]["steps_logged"] > 0 and "samples" not in summary["metrics"]
