"""Recovery from lost nodes, the controller's pure parts: naming the lost nodes, attempts, the timeline."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import recovery


def host(name, rank, node_id, ping=None):
    return {"inventory_hostname": name, "gpu_cluster_rank": rank, "gpu_cluster_node_id": node_id,
            "_gpu_cluster_ping": ping}


def node(rank, node_id, state="running"):
    return {"rank": rank, "id": node_id, "state": state}


def test_lost_nodes_from_the_cloud_and_from_ssh():
    hosts = [host("c-0", 0, "a", {"ping": "pong"}),
             host("c-1", 1, "b", {"skipped": True}),
             host("c-2", 2, "c", {"unreachable": True, "msg": "Failed to connect to the host via ssh:\n  timed out"}),
             host("c-3", 3, "d"),
             host("c-4", 4, "e", {"skipped": True})]
    cloud = [node(0, "a"), node(1, "b", "stopped"), node(2, "c"), node(3, "x"), ]
    lost = recovery.lost_nodes(hosts, cloud)
    assert [(n["host"], n["rank"], n["reason"]) for n in lost] == [
        ("c-1", 1, "stopped in the cloud"),
        ("c-2", 2, "does not answer over SSH: Failed to connect to the host via ssh: timed out"),
        ("c-3", 3, "gone: rank 3 is now node x, not d"),
        ("c-4", 4, "gone: the cloud has no node of rank 4 any more"),
    ]


def test_nothing_lost_when_every_node_runs_and_answers():
    hosts = [host("c-0", 0, "a", {"ping": "pong"}), host("c-1", "1", "b", {"ping": "pong", "changed": False})]
    assert recovery.lost_nodes(hosts, [node(1, "b"), node(0, "a")]) == []


def test_without_a_cloud_only_ssh_counts():
    hosts = [host("byo-a", None, None, {"failed": True, "msg": "timeout"}), host("byo-b", None, None, {"ping": "pong"})]
    assert [n["host"] for n in recovery.lost_nodes(hosts, None)] == ["byo-a"]


def summary(run_id, status, started, ended, last_step=None, resumed=None):
    metrics = {}
    if last_step is not None:
        metrics["last_step"] = last_step
    if resumed is not None:
        metrics["resumed_from_step"] = resumed
    return {"run_id": run_id, "status": status, "reason": "node" if status == "failed" else None,
            "message": "c-1 (node rank 1) failed: stopped answering" if status == "failed" else "all good",
            "started": started, "ended": ended, "metrics": metrics}


def test_attempts_and_the_recovery_timeline():
    lost = [{"host": "c-1", "rank": 1, "node_id": "b", "reason": "stopped in the cloud"}]
    first = recovery.attempt_record(summary("r", "failed", 100.0, 160.0, last_step=80),
                                    {"times": {"running": 110.0, "first_step": 112.0, "ended": 150.0}}, lost,
                                    {"detected": 150.0})
    first["recovery"].update(replaced=160.5, configured=190.0)
    second = recovery.attempt_record(summary("r-r1", "succeeded", 195.0, 260.0, last_step=200, resumed=80),
                                     {"times": {"running": 205.25, "first_step": 207.0, "ended": 259.0}})
    assert first["message"].startswith("c-1") and second["message"] is None
    assert second["lost"] == [] and "recovery" not in second
    rec = recovery.timeline([first, second])
    assert rec == [{"after_run": "r", "run_id": "r-r1", "lost": ["c-1"], "detected": 150.0, "replaced_s": 10.5,
                    "configured_s": 40.0, "relaunched_s": 45.0, "running_again_s": 55.2, "first_step_s": 57.0,
                    "resumed_from_step": 80, "on_demand": []}]
    text = "\n".join(recovery.attempts_text([first, second], rec, 1))
    assert "attempts: 2 (torchrun_max_recoveries 1)" in text
    assert "1. run r: FAILED after 60.0s, last step 80; lost c-1 (rank 1: stopped in the cloud)" in text
    assert "2. run r-r1: SUCCEEDED after 65.0s, last step 200" in text
    assert ("recovery 1 (c-1 lost): from detection, replaced 10.5s, configured 40.0s, relaunched 45.0s, "
            "running again 55.2s, first step 57.0s; resumed from step 80") in text


def test_one_attempt_prints_nothing_and_missing_times_are_none():
    only = recovery.attempt_record(summary("r", "succeeded", 1.0, 2.0))
    assert recovery.attempts_text([only], []) == [] and recovery.timeline([only]) == []
    failed = recovery.attempt_record(summary("r", "failed", 1.0, 2.0), None, [], {"detected": 2.0})
    again = recovery.attempt_record(summary("r-r1", "failed", None, None))
    rec = recovery.timeline([failed, again])
    assert rec[0]["running_again_s"] is None and rec[0]["replaced_s"] is None
    assert "from detection, no times" in "\n".join(recovery.attempts_text([failed, again], rec))


def preempted_attempt(run_id, lost, preempted):
    """An attempt that lost ``lost`` ([(host, rank)]) of which ``preempted`` (hosts) had a spot notice."""
    summ = dict(summary(run_id, "failed", 1.0, 2.0), preempted_nodes=list(preempted))
    return recovery.attempt_record(summ, None, [{"host": h, "rank": r, "node_id": "x", "reason": "gone"}
                                                for h, r in lost], {"detected": 2.0})


def test_spot_fallback_counts_each_ranks_preemptions_across_attempts():
    first = preempted_attempt("r", [("c-1", 1), ("c-2", 2)], ["c-1"])       # c-2 failed, not preempted
    assert first["preempted"] == ["c-1"]
    assert recovery.preemptions_by_rank([first]) == {1: 1}
    # after 2: one preemption of rank 1 is not enough, and a failed (not preempted) node never counts
    assert recovery.spot_fallback([first], first["lost"], 2) == []
    assert recovery.spot_fallback([first], first["lost"], 1) == [{"host": "c-1", "rank": 1, "preemptions": 1}]
    second = preempted_attempt("r-r1", [("c-0", 0), ("c-1", 1)], ["c-1", "c-0"])
    assert recovery.preemptions_by_rank([first, second]) == {0: 1, 1: 2}
    assert recovery.spot_fallback([first, second], second["lost"], 2) == [{"host": "c-1", "rank": 1, "preemptions": 2}]
    # 0: replacements stay spot; a string (an extra var) counts as its number
    assert recovery.spot_fallback([first, second], second["lost"], 0) == []
    assert [n["rank"] for n in recovery.spot_fallback([first, second], second["lost"], "1")] == [0, 1]
    # a rank that fell back stays on-demand when its (on-demand) node is lost later for another reason
    third = preempted_attempt("r-r2", [("c-1", 1)], [])
    assert "preempted" not in third
    assert recovery.spot_fallback([first, second, third], third["lost"], 2) == [
        {"host": "c-1", "rank": 1, "preemptions": 2}]


def test_the_report_says_which_replacements_went_on_demand():
    first = preempted_attempt("r", [("c-1", 1)], ["c-1"])
    first["recovery"].update(replaced=3.0, configured=4.0,
                             on_demand=recovery.spot_fallback([first], first["lost"], 1))
    second = recovery.attempt_record(summary("r-r1", "succeeded", 5.0, 9.0))
    rec = recovery.timeline([first, second])
    assert rec[0]["on_demand"] == ["c-1"]
    assert "; replaced on-demand (spot fallback): c-1" in "\n".join(recovery.attempts_text([first, second], rec))
