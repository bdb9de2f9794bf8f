"""The torchrun role's log collection after a failed attempt (tasks/collect.yml): which nodes it asks, from the
watch's lost nodes and each node's stop."""

from __future__ import annotations

from test_role_rendering import render, tasks

COLLECT = "Bring every node's log to the controller in one round, and find the nodes that left outputs"


def collect_hosts(lost, stops):
    hosts = ["n0", "n1", "n2", "n3", "n4"]
    task = tasks("torchrun", "collect.yml")[COLLECT]
    variables = {"ansible_play_hosts_all": hosts, "_torchrun_plan": {"hosts": dict((h, r) for r, h in enumerate(hosts))},
                 "_torchrun_watch": {"lost": lost}, "_torchrun_stopped": {"nodes": stops}}
    return render(task["vars"]["_torchrun_collect_hosts"], variables)


def test_a_node_whose_stop_answered_late_still_has_its_log_collected():
    stops = {
        "n0": {"failed": True, "unreachable": True, "msg": "ssh: connect to host n0: Connection refused"},
        # reachable, its stop module slower than the round (a busy node): its log is all the report has of it
        "n1": {"failed": True, "unreachable": False, "msg": "it did not answer within 45 s"},
        "n2": {"action": "stopped", "changed": True},
        "n3": {"action": "absent", "changed": False},
        "n4": {"failed": True, "unreachable": True, "msg": "ssh: connect to host n4: No route to host"},
    }
    # n0: lost and its stop could not reach it; n3: lost by the watch but its stop reached it; n4: unreachable
    assert collect_hosts(["n0", "n3"], stops) == ["n1", "n2", "n3"]


def test_after_a_success_every_node_is_asked():
    assert collect_hosts([], {}) == ["n0", "n1", "n2", "n3", "n4"]
