"""The run report: summary.json from the verdict and the logs, the text, the failure message, loss.png."""

from __future__ import annotations

import copy
import json
import os

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.report import verdict_of as watch_verdict
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


# -- the whole report from plain data (build_report), on the inputs of real runs --------------------------------------
# report_runs/<case>/: the torchrun_report action's arguments (args.json, storage_options left out), the node logs it
# read and the summary.json / summary.txt it wrote, from train.yml on 2 local nodes x 2 processes (2026-12-05;
# node names and the runs directory renamed, same lengths): "succeeded" (60 steps), "failed" (a bad script argument
# on every node)
RUNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report_runs")
RUNS_DIR = "/srv/aiinfra/runs"


def real_run(case):
    base = os.path.join(RUNS, case)
    with open(os.path.join(base, "args.json")) as handle:
        args = json.load(handle)
    with open(os.path.join(base, "summary.json")) as handle:
        expected = json.load(handle)
    with open(os.path.join(base, "summary.txt")) as handle:
        text = handle.read()
    logs, paths = {}, {}
    for host in args["hosts"]:
        with open(os.path.join(base, host, "torchrun.log")) as handle:
            logs[host] = parse_log(handle.read())
        paths[host] = os.path.join(RUNS_DIR, args["run_id"], host, "torchrun.log")
    return args, logs, paths, expected, text


def build(args, logs, paths, ended, plot_path=None, **changes):
    inputs = dict(watch=args["watch"], logs=logs, log_paths=paths, addresses=args["addresses"], stops=args["stops"],
                  unstopped=args["unstopped"], outputs=args["outputs"], utilisation=args["utilisation"],
                  prices=args["prices"], attempts=args["attempts"], max_recoveries=args["max_recoveries"],
                  checkpoints=args["checkpoints"], report_uri=args["report_uri"], plot_path=plot_path)
    inputs.update(changes)
    run = {"run_id": args["run_id"], "job": args["job"], "started": args["started"], "ended": ended,
           "rdzv_endpoint": args["rdzv_endpoint"]}
    return tr.build_report(run, args["hosts"], **inputs)


@pytest.mark.parametrize("case", ["succeeded", "failed"])
def test_the_report_of_a_real_run_is_what_the_action_wrote(case, tmp_path):
    args, logs, paths, expected, expected_text = real_run(case)
    plot = str(tmp_path / "loss.png")
    summary, text, warnings = build(args, logs, paths, expected["ended"], plot_path=plot)
    if expected["plot"]:
        assert summary["plot"] == plot
        expected["plot"] = plot
        expected_text = expected_text.replace(os.path.join(RUNS_DIR, args["run_id"], "loss.png"), plot)
    assert json.loads(json.dumps(summary)) == expected  # summary.json, key for key
    assert list(summary) == list(expected)  # in the same order
    assert text + "\n" == expected_text  # summary.txt
    assert warnings == []


def test_a_real_success_in_figures():
    args, logs, paths, expected, dummy = real_run("succeeded")
    summary, text, warnings = build(args, logs, paths, expected["ended"])
    assert summary["status"] == "succeeded" and summary["exit_code"] == 0 and summary["world_size"] == 4
    assert summary["ranks_reported"] == [0, 1, 2, 3] and summary["metrics"]["loss_went_down"]
    assert [n["log"] for n in summary["nodes"]] == [paths[h] for h in sorted(args["hosts"], key=args["hosts"].get)]
    assert summary["plot"] is None and "loss plot" not in text  # no plot_path: no plot
    assert summary["utilisation"]["line"].startswith("utilisation: not available")
    assert summary["cost"]["run"]["currency"] == "USD"
    assert [a["status"] for a in summary["attempts"]] == ["succeeded"] and summary["recoveries"] == []
    assert "SUCCEEDED" in text and "cost of the run" in text


def test_a_real_failure_names_the_node_and_fails_with_its_log():
    args, logs, paths, expected, dummy = real_run("failed")
    summary, text, warnings = build(args, logs, paths, expected["ended"], plot_path="/nonexistent/loss.png")
    first = summary["failed_nodes"][0]
    assert summary["status"] == "failed" and summary["exit_code"] == 1
    assert summary["message"].startswith("%s (node rank %d) failed" % (first, args["hosts"][first]))
    assert warnings == []  # no plot of a failed run without steps, and no warning for it
    msg = tr.failure_message(summary, summary["unstopped_nodes"])
    assert "last lines of %s's log (%s)" % (first, paths[first]) in msg and "Stopped the job on every node." in msg


def test_parts_left_out_when_not_given():
    args, logs, paths, expected, dummy = real_run("succeeded")
    summary, text, warnings = build(args, logs, paths, expected["ended"], utilisation=None, prices=None)
    assert "utilisation" not in summary and "cost" not in summary and "checkpoints" not in summary
    assert "report_uri" not in summary and "cost of the run" not in text


def test_a_watch_without_a_verdict_makes_a_failed_report():
    args, logs, paths, expected, dummy = real_run("succeeded")
    watch = dict(args["watch"])
    del watch["verdict"]
    summary, text, warnings = build(args, logs, paths, expected["ended"], watch=watch)
    assert summary["status"] == "failed" and summary["message"] == "the watch ended without a verdict"
    assert summary["failed_nodes"] == sorted(args["hosts"], key=args["hosts"].get)
    assert "FAILED" in text


def test_checkpoints_attempts_outputs_and_report_uri(tmp_path):
    args, logs, paths, expected, dummy = real_run("succeeded")
    first, second = sorted(args["hosts"], key=args["hosts"].get)
    checkpoints = {"uri": "s3://ck/job", "nodes": {
        first: {"restore": {"changed": True, "transferred": ["job/last.ckpt"], "bytes": 10,
                            "corrupt": [{"key": "job/bad.ckpt", "reason": "sha256 mismatch"}]},
                "upload": {"uploaded": 1, "bytes": 10, "errors": [], "final": True}},
        second: {}}}
    earlier = copy.deepcopy(expected["attempts"][0])
    earlier.update(run_id="earlier", status="failed", lost=[{"host": second, "rank": 1, "reason": "lost"}],
                   recovery={"detected": earlier["ended"], "replaced": earlier["ended"] + 30.0,
                             "configured": earlier["ended"] + 60.0})
    summary, text, warnings = build(
        args, logs, paths, expected["ended"], checkpoints=checkpoints, attempts=[earlier], max_recoveries=2,
        outputs={first: "/runs/x/%s/outputs" % first, second: ""}, report_uri=" s3://reports/runs/ ")
    assert summary["report_uri"] == "s3://reports/runs/%s/" % args["run_id"]
    assert text.endswith("\n  report: s3://reports/runs/%s/" % args["run_id"])
    assert summary["outputs"] == {first: "/runs/x/%s/outputs" % first}  # a node without outputs is left out
    assert [a["run_id"] for a in summary["attempts"]] == ["earlier", args["run_id"]]
    assert len(summary["recoveries"]) == 1 and summary["recoveries"][0]["run_id"] == args["run_id"]
    assert summary["checkpoints"]["uri"] == "s3://ck/job"
    assert any("job/bad.ckpt" in w and first in w for w in warnings), warnings
    assert "outputs: %s -> /runs/x/%s/outputs" % (first, first) in text


def test_no_matplotlib_is_a_warning_for_a_success_only(monkeypatch, tmp_path):
    args, logs, paths, expected, dummy = real_run("succeeded")
    monkeypatch.setattr(tr, "plot_loss", lambda summary, path, shaped=None: (None, "matplotlib is not installed"))
    summary, text, warnings = build(args, logs, paths, expected["ended"], plot_path=str(tmp_path / "loss.png"))
    assert warnings == ["no loss plot: matplotlib is not installed"] and summary["plot"] is None
    args, logs, paths, expected, dummy = real_run("failed")
    assert build(args, logs, paths, expected["ended"], plot_path=str(tmp_path / "loss.png"))[2] == []


def test_a_node_that_ended_by_itself_after_the_verdict_is_not_shown_running():
    # seen in a real run under load: the verdict came while rank 0's node was still running; its torchrun ended on
    # its own (its peer was gone) before the stop, which found only its exit record (action absent)
    args, logs, paths, expected, dummy = real_run("failed")
    first = args["watch"]["verdict"]["failed"][0]
    other = next(h for h in args["hosts"] if h != first)
    watch = copy.deepcopy(args["watch"])
    watch["nodes"][other].update(active=True, exit=None)
    watch["verdict"]["phases"][other] = "running"
    watch["verdict"]["failed"] = [first]
    assert args["stops"][other]["action"] == "absent" and args["stops"][other]["exit"]["status"] == "1"
    summary, text, warnings = build(args, logs, paths, expected["ended"], watch=watch)
    row = next(r for r in summary["nodes"] if r["host"] == other)
    assert row["phase"] == "failed" and row["exit_code"] == 1 and row["duration_s"] is not None
    assert "running" not in [r["phase"] for r in summary["nodes"]]
    # one the stop did stop is "stopped", with the stop's exit record
    stops = copy.deepcopy(args["stops"])
    stops[other].update(action="stopped", exit={"result": "signal", "code": "killed", "status": "TERM",
                                                "time": stops[other]["exit"]["time"]})
    summary, text, warnings = build(args, logs, paths, expected["ended"], watch=watch, stops=stops)
    row = next(r for r in summary["nodes"] if r["host"] == other)
    assert row["phase"] == "stopped" and row["exit_code"] == 143
