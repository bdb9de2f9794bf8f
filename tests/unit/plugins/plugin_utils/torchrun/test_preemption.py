"""A preempted node: the spot notice its watcher recorded, read by the poll, named by the verdict as preempted (the
cause, whatever its peers said first), and shown so in the run's summary."""

from __future__ import annotations

import json
import subprocess

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import SPOT_NOTICE, RunDir
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import poll
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import report
from test_verdict import HOSTS, exited, running, verdict_of

NOTICE = {"source": "aws", "time": 130.0, "detail": "spot instance-action terminate at 2026-12-05T10:00:00Z",
          "action_time": "2026-12-05T10:00:00Z"}


def sh(script):
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout


def test_the_poll_reads_the_notice_file_and_only_it(tmp_path, monkeypatch):
    assert SPOT_NOTICE == "/run/aiinfra/preempted.json"  # what roles/gpu_cluster/files/aiinfra_spot_notice.py writes
    notice = tmp_path / "preempted.json"
    monkeypatch.setattr(poll, "SPOT_NOTICE", str(notice))
    run = RunDir(str(tmp_path), "r1")
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    assert poll.parse_poll(sh(poll.poll_script(run, 0)))["notice"] is None
    notice.write_text(json.dumps(NOTICE, indent=2) + "\n")  # on several lines: the poll puts it on one
    assert poll.parse_poll(sh(poll.poll_script(run, 0)))["notice"] == NOTICE
    notice.write_text('{"source": "aw')  # being written: the next poll reads it
    assert poll.parse_poll(sh(poll.poll_script(run, 0)))["notice"] is None


def test_a_preempted_node_is_named_first_as_preempted_even_when_a_peer_failed_before_it_was_lost():
    # n1 got the notice; its peers' workers failed ("connection closed by peer") before n1 stopped answering
    states = {"n0": exited("1", at=140.0, t=141.0), "n1": running(t=131.0, preempted=NOTICE),
              "n2": exited("1", at=141.0, t=142.0)}
    verdict = verdict_of(states, 160.0, 90.0)
    assert verdict["done"] and verdict["status"] == "failed"
    assert verdict["failed"][0] == "n1" and verdict["preempted"] == ["n1"]
    assert verdict["message"].startswith("n1 (node rank 1) failed: was preempted (spot notice from aws: spot "
                                         "instance-action terminate at 2026-12-05T10:00:00Z)")


def test_without_a_notice_the_same_loss_is_no_preemption():
    states = {"n0": exited("1", at=140.0, t=141.0), "n1": running(t=131.0), "n2": exited("1", at=141.0, t=142.0)}
    verdict = verdict_of(states, 160.0, 90.0)
    assert verdict["failed"][0] == "n1" and verdict["preempted"] == []
    assert "preempted" not in verdict["message"] and "stopped answering" in verdict["message"]


def test_a_notice_on_a_node_that_finished_well_changes_nothing():
    states = dict((h, exited("0", at=150.0)) for h in HOSTS)
    states["n2"]["preempted"] = NOTICE
    verdict = verdict_of(states, 151.0, 90.0)
    assert verdict["status"] == "succeeded" and verdict["preempted"] == []


def test_the_summary_shows_the_preempted_node_and_its_notice():
    states = {"n0": exited("1", at=140.0, t=141.0, started_at=100.0), "n1": running(t=131.0, preempted=NOTICE,
                                                                                    started_at=100.0),
              "n2": exited("1", at=141.0, t=142.0, started_at=100.0)}
    verdict = verdict_of(states, 160.0, 90.0)
    nodes = [{"host": h, "node_rank": r, "address": "10.0.0.%d" % r, "nproc_per_node": 1, "state": states[h]}
             for h, r in HOSTS.items()]
    summary = report.summarize({"run_id": "r1", "job": "example", "started": 90.0, "ended": 160.0}, nodes, verdict,
                               {})
    assert summary["preempted_nodes"] == ["n1"] and summary["failed_nodes"][0] == "n1"
    rows = dict((n["host"], n) for n in summary["nodes"])
    assert rows["n1"]["phase"] == "preempted" and rows["n1"]["preempted"] == NOTICE
    assert rows["n0"]["phase"] == "failed" and rows["n0"]["preempted"] is None
    assert "preempted" in report.summary_text(summary)
