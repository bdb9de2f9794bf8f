"""plugins/action/torchrun_report.py: the controller's part of the report - its arguments, the node logs in a run
directory, summary.json / summary.txt, the upload, what it shows and how it fails."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ansible.errors import AnsibleActionFail

from action_harness import make_action

RUNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugin_utils", "torchrun", "report_runs")


def run_dir_of(case, tmp_path, logs=True):
    """A run directory as the role leaves it (each node's fetched log), and the action's arguments for it."""
    with open(os.path.join(RUNS, case, "args.json")) as handle:
        args = json.load(handle)
    run_dir = tmp_path / args["run_id"]
    run_dir.mkdir()
    for host in args["hosts"] if logs else ():
        (run_dir / host).mkdir()
        shutil.copy(os.path.join(RUNS, case, host, "torchrun.log"), str(run_dir / host / "torchrun.log"))
    args["run_dir"] = str(run_dir)
    return args, run_dir


def expected_summary(case):
    with open(os.path.join(RUNS, case, "summary.json")) as handle:
        return json.load(handle)


def test_a_success_writes_the_summary_and_shows_it(tmp_path, monkeypatch):
    args, run_dir = run_dir_of("succeeded", tmp_path)
    assert args["show"] is False  # train.yml shows the report as its last task instead
    args["show"] = True
    action, shown, dummy = make_action("torchrun_report", args, monkeypatch)
    result = action.run(task_vars={})
    assert not result.get("failed") and result["changed"] is False
    written = json.loads((run_dir / "summary.json").read_text())
    assert written == json.loads(json.dumps(result["summary"]))
    expected = expected_summary("succeeded")
    # the same report as the real run's, but for the time it was made and where its files are
    for key in ("ended", "duration_s", "plot", "nodes", "cost", "attempts", "utilisation"):
        written.pop(key), expected.pop(key)
    assert written == expected
    assert result["summary"]["nodes"][0]["log"] == str(run_dir / sorted(args["hosts"])[0] / "torchrun.log")
    assert (run_dir / "summary.txt").read_text() == result["summary_text"] + "\n"
    assert result["summary_path"] == str(run_dir / "summary.json") and result["run_dir"] == str(run_dir)
    assert result["report_uri"] == "" and "report_upload" not in result
    assert shown.lines == [result["summary_text"]] and result["msg"] == result["summary_text"]
    assert "SUCCEEDED" in result["summary_text"]


def test_a_success_is_not_shown_with_show_false_but_a_failure_always_is(tmp_path, monkeypatch):
    args, dummy = run_dir_of("succeeded", tmp_path)
    args.update(show=False, plot=False)
    action, shown, dummy = make_action("torchrun_report", args, monkeypatch)
    assert not action.run(task_vars={}).get("failed") and shown.lines == []
    (tmp_path / "f").mkdir()
    args, dummy = run_dir_of("failed", tmp_path / "f")
    args.update(show=False)
    action, shown, dummy = make_action("torchrun_report", args, monkeypatch)
    result = action.run(task_vars={})
    assert result["failed"] and shown.lines == [result["summary_text"]]


def test_a_failure_fails_the_task_naming_the_node_with_its_log(tmp_path, monkeypatch):
    args, run_dir = run_dir_of("failed", tmp_path)
    args["unstopped"] = [sorted(args["hosts"])[0]]
    action, shown, dummy = make_action("torchrun_report", args, monkeypatch)
    result = action.run(task_vars={})
    first = result["summary"]["failed_nodes"][0]
    assert result["failed"]
    assert result["msg"].startswith("torchrun run %s failed: %s (node rank" % (args["run_id"], first))
    assert "last lines of %s's log (%s)" % (first, run_dir / first / "torchrun.log") in result["msg"]
    assert "Stopped the job on every node but %s" % args["unstopped"][0] in result["msg"]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


def test_a_node_whose_log_was_not_fetched_keeps_what_the_watch_saw(tmp_path, monkeypatch):
    args, run_dir = run_dir_of("failed", tmp_path, logs=False)
    action, dummy, dummy = make_action("torchrun_report", args, monkeypatch)
    result = action.run(task_vars={})
    for host in args["hosts"]:
        partial = run_dir / host / "torchrun.partial.log"
        assert partial.read_text() == "\n".join(args["watch"]["nodes"][host]["log"]["tail"]) + "\n"
    rows = result["summary"]["nodes"]
    assert [r["log"] for r in rows] == [str(run_dir / r["host"] / "torchrun.partial.log") for r in rows]


def test_the_run_directory_is_uploaded_and_a_failed_upload_fails_a_success(tmp_path, monkeypatch):
    args, run_dir = run_dir_of("succeeded", tmp_path)
    args.update(report_uri="s3://reports/runs", storage_options={"secret_key": "s3cr3t"}, plot=False)
    calls = []

    def publish(path, uri, run_id, options):
        calls.append((path, uri, run_id, options))
        assert os.path.exists(os.path.join(path, "summary.json"))  # written before the upload
        return {"uri": "%s/%s/" % (uri, run_id), "files": 5, "bytes": 100, "error": None}
    action, shown, plugin = make_action("torchrun_report", args, monkeypatch)
    monkeypatch.setattr(plugin, "publish_run_dir", publish)
    result = action.run(task_vars={})
    assert calls == [(str(run_dir), "s3://reports/runs", args["run_id"], {"secret_key": "s3cr3t"})]
    assert not result.get("failed") and result["changed"] is True
    assert result["report_uri"] == "s3://reports/runs/%s/" % args["run_id"]
    assert result["summary_text"].endswith("report: s3://reports/runs/%s/ (5 files)" % args["run_id"])
    assert "s3cr3t" not in json.dumps(result)

    monkeypatch.setattr(plugin, "publish_run_dir", lambda *a: {"uri": "s3://reports/runs/x/", "files": 0,
                                                               "bytes": 0, "error": "AccessDenied"})
    action, shown, plugin = make_action("torchrun_report", args, monkeypatch)
    monkeypatch.setattr(plugin, "publish_run_dir", lambda *a: {"uri": "s3://reports/runs/x/", "files": 0,
                                                               "bytes": 0, "error": "AccessDenied"})
    result = action.run(task_vars={})
    assert result["failed"] and result["changed"] is False
    assert "could not be uploaded to s3://reports/runs/x/: AccessDenied" in result["msg"]
    assert result["summary_text"].endswith(" - NOT uploaded: AccessDenied")


def test_an_undocumented_or_missing_option_is_refused(tmp_path, monkeypatch):
    args, dummy = run_dir_of("succeeded", tmp_path)
    action, dummy, dummy = make_action("torchrun_report", dict(args, no_such_option=1), monkeypatch)
    with pytest.raises(AnsibleActionFail, match="no_such_option"):
        action.run(task_vars={})
    del args["started"]
    action, dummy, dummy = make_action("torchrun_report", args, monkeypatch)
    with pytest.raises(AnsibleActionFail, match="started"):
        action.run(task_vars={})
