"""The verdict over every node's latest state."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.verdict import NodeState, decide

# -- the watcher's verdict -----------------------------------------------------------------------

HOSTS = {"n0": 0, "n1": 1, "n2": 2}
SETTINGS = {"node_timeout": 20, "rdzv_timeout": 60, "timeout": 600}


def states_of(raw):
    return dict((h, NodeState.from_dict(dict(s, host=h, node_rank=HOSTS[h]))) for h, s in raw.items())


def verdict_of(raw, now, started):
    return decide(states_of(raw), now, started, SETTINGS).to_dict()


def running(t=100.0, joined=True, **kw):
    log = {"attempted": True, "joined": {"round": 0} if joined else None, "ranks": [0] if joined else [],
           "tail": ["last line"], "errors": []}
    state = {"t": t, "active": True, "started": True, "exit": None, "lost": None, "log": log}
    state.update(kw)
    return state


def exited(status="0", result="success", at=110.0, t=111.0, **kw):
    code = "exited" if status.isdigit() else "killed"
    record = {"result": result if status == "0" else "exit-code", "code": code, "status": status, "time": at}
    return running(t=t, active=False, exit=record, **kw)


def test_running_until_everyone_succeeds():
    states = {"n0": running(), "n1": running(), "n2": running()}
    verdict = verdict_of(states, 105.0, 90.0)
    assert not verdict["done"] and verdict["status"] == "running"
    states = {"n0": exited(), "n1": exited(), "n2": running()}
    assert not verdict_of(states, 112.0, 90.0)["done"]
    states["n2"] = exited()
    verdict = verdict_of(states, 112.0, 90.0)
    assert verdict["done"] and verdict["status"] == "succeeded"


def test_first_failure_is_named_and_a_survivor_exiting_0_does_not_count_as_success():
    states = {"n0": exited("0", at=120.0), "n1": exited("1", at=110.0), "n2": exited("1", at=112.0)}
    verdict = verdict_of(states, 121.0, 90.0)
    assert verdict["done"] and verdict["status"] == "failed" and verdict["reason"] == "node"
    assert verdict["failed"] == ["n1", "n2"]
    assert verdict["message"].startswith("n1 (node rank 1) failed: torchrun ended with exit code 1")
    assert "n2 (failed)" in verdict["message"]


def test_a_lost_node_comes_first_and_a_silent_one_is_lost():
    states = {"n0": exited("1", at=101.0), "n1": running(lost="no answer within 15s", lost_at=100.0),
              "n2": running(t=101.5)}
    verdict = verdict_of(states, 102.0, 50.0)
    assert verdict["failed"][0] == "n1" and "stopped answering: no answer within 15s" in verdict["message"]
    # a watcher that stopped writing for longer than node_timeout
    states = {"n0": running(t=130.0), "n1": running(t=100.0), "n2": running(t=130.0)}
    verdict = verdict_of(states, 130.5, 50.0)
    assert verdict["done"] and verdict["failed"] == ["n1"] and "no answer for 30s" in verdict["message"]


def test_a_node_that_goes_silent_as_its_peers_fail_is_named_first():
    # n2 died; n0 and n1 failed a moment later (connection closed by peer) and said so at once
    states = {"n0": exited("1", at=110.0, t=110.5), "n1": exited("1", at=110.2, t=110.6), "n2": running(t=109.0)}
    waiting = verdict_of(states, 113.0, 50.0)
    assert not waiting["done"]  # n2 gets a moment to report
    verdict = verdict_of(states, 121.0, 50.0)  # settle: node_timeout / 2
    assert verdict["done"] and verdict["failed"] == ["n2", "n0", "n1"]
    assert verdict["message"].startswith("n2 (node rank 2) failed: stopped answering: no answer since its peers "
                                         "failed 11s ago")
    # n2 reporting its own failure in time makes it the cause by its exit time, not a lost node
    states["n2"] = exited("143", at=109.8, t=112.0)
    verdict = verdict_of(states, 112.5, 50.0)
    assert verdict["failed"][0] == "n2" and "exit code 143" in verdict["message"]


def test_a_node_stopped_from_outside_is_the_cause_not_a_slow_peer():
    # n1's container was stopped (its torchrun got SIGTERM); n2 failed by itself a moment later; n0's poll is slow
    # (a loaded controller): n0 must not be taken for a lost node, and the verdict need not wait for it
    states = {"n0": running(t=105.0), "n1": exited("TERM", at=110.0, t=110.5), "n2": exited("1", at=110.3, t=110.6)}
    verdict = verdict_of(states, 112.0, 50.0)
    assert verdict["done"] and verdict["failed"] == ["n1", "n2"] and verdict["phases"]["n0"] == "running"
    assert verdict["message"].startswith("n1 (node rank 1) failed:")
    # still silent past node_timeout: lost, and named first
    verdict = verdict_of(states, 126.0, 50.0)
    assert verdict["failed"][0] == "n0" and verdict["phases"]["n0"] == "lost"


def test_killed_and_timed_out_units():
    states = {"n0": running(t=111.5), "n1": exited("KILL"), "n2": running(t=111.5)}
    assert "killed by SIGKILL" in verdict_of(states, 112.0, 50.0)["message"]
    states["n1"] = running(active=False, exit={"result": "timeout", "code": "killed", "status": "TERM",
                                               "time": 111.0}, timeout=600)
    verdict = verdict_of(states, 112.0, 50.0)
    assert verdict["reason"] == "timeout" and "torchrun_timeout (600s)" in verdict["message"]
    states["n1"] = running(active=False, exit=None)
    assert "vanished" in verdict_of(states, 112.0, 50.0)["message"]


def test_rendezvous_deadline_names_the_nodes_that_did_not_join():
    def states(t):
        return {"n0": running(t, joined=False), "n1": running(t, joined=False),
                "n2": running(t, joined=False, log={"attempted": False, "joined": None, "ranks": []},
                              probe={"endpoint": "10.0.0.2:29400", "ok": False, "error": "No route to host"})}
    assert not verdict_of(states(139.0), 140.0, 100.0)["done"]  # 40s < 60s
    verdict = verdict_of(states(160.0), 161.0, 100.0)
    assert verdict["done"] and verdict["reason"] == "rendezvous" and verdict["failed"] == ["n2"]
    assert "did not complete within torchrun_rdzv_timeout (60s)" in verdict["message"]
    assert "n2 (node rank 2): cannot reach the rendezvous endpoint 10.0.0.2:29400 (No route to host)" \
        in verdict["message"]
    assert "n0" not in verdict["message"].split("did not join:")[1]


def test_a_node_that_fails_before_the_rendezvous_completes_is_a_rendezvous_failure():
    states = {"n0": running(joined=False), "n1": running(joined=False),
              "n2": exited("1", log={"attempted": False, "joined": None, "ranks": [], "tail": ["conn failed"]})}
    verdict = verdict_of(states, 120.0, 100.0)
    assert verdict["reason"] == "rendezvous"
    assert "did not join: n2 (node rank 2): torchrun ended with exit code 1" in verdict["message"]


def test_a_launch_failure_names_the_node_that_ended_first_whatever_the_order_of_events():
    """One node's launch fails (exit 127) while the others are still starting: the failed node is the cause,
    named first, in every order the events can arrive in (seen under load: a still-starting rank 0 named first)."""
    not_yet = {"attempted": False, "joined": None, "ranks": [], "tail": []}
    for failed in HOSTS:
        for answered in (110.2, 111.0, 119.0):  # the others answered just before, or after, the failure was seen
            states = {}
            for host in HOSTS:
                if host == failed:
                    states[host] = exited("127", at=110.0, t=110.5, log=dict(not_yet, tail=["docker: Error response"]))
                else:
                    states[host] = running(t=answered, active=True, log=dict(not_yet))
            verdict = verdict_of(states, 121.0, 100.0)
            assert verdict["done"] and verdict["reason"] == "rendezvous", verdict
            assert verdict["failed"][0] == failed, verdict
            assert "did not join: %s (node rank %d): torchrun ended with exit code 127" % (failed, HOSTS[failed]) \
                in verdict["message"], verdict["message"]
    # two nodes fail: the one that ended first is named first, whichever rank it has
    states = {"n0": exited("127", at=112.0, t=112.5, log=dict(not_yet)),
              "n1": exited("127", at=110.0, t=110.5, log=dict(not_yet)), "n2": running(t=113.0, log=dict(not_yet))}
    verdict = verdict_of(states, 121.0, 100.0)
    assert verdict["failed"][:2] == ["n1", "n0"]
    assert verdict["message"].index("n1 (node rank 1): torchrun ended") < verdict["message"].index("n0 (node rank 0)")


def test_job_timeout_backstop():
    states = {h: running(t=700.0) for h in HOSTS}
    verdict = verdict_of(states, 700.0, 50.0)
    assert verdict["done"] and verdict["reason"] == "timeout"


def test_a_node_never_answering_is_timed_from_its_first_poll_not_from_the_launch():
    # the launch took 30s (few forks, a loaded controller); the first poll went out at 125
    states = {h: {"asked": 125.0} for h in HOSTS}
    assert not verdict_of(states, 140.0, 95.0)["done"]
    verdict = verdict_of(states, 146.0, 95.0)
    assert verdict["done"] and verdict["phases"] == {"n0": "lost", "n1": "lost", "n2": "lost"}


def test_a_node_stopped_from_outside_is_named_before_the_peers_it_took_down():
    # n2's node shut down: its agent got SIGTERM and recorded its end at 112, after n1 had already failed at 110
    # with "connection closed by peer" (exit code 1); n0 is still stopping
    states = {"n0": running(t=113.0), "n1": exited("1", at=110.0, t=113.0), "n2": exited("TERM", at=112.0, t=113.0)}
    verdict = verdict_of(states, 113.5, 50.0)
    assert verdict["done"] and verdict["failed"][:2] == ["n2", "n1"], verdict
    assert verdict["message"].startswith("n2 (node rank 2) failed: torchrun was killed by SIGTERM"), verdict
    # a unit gone without an exit record (the node went down with it) counts as stopped from outside too
    states["n2"] = running(t=113.0, active=False, exit=None)
    assert verdict_of(states, 113.5, 50.0)["failed"][0] == "n2"
    # failures by themselves stay in time order
    states = {"n0": running(t=113.0), "n1": exited("1", at=110.0, t=113.0), "n2": exited("1", at=111.0, t=113.0)}
    assert verdict_of(states, 113.5, 50.0)["failed"] == ["n1", "n2"]


def test_a_node_whose_shutdown_stopped_torchrun_is_the_cause_though_its_agent_exited_1():
    # n1's container was stopped: systemd stopped the unit on the way down, torchrun's agent exited 1 after its
    # SIGTERM and the poll caught the exit record before the node went; n0 failed by itself a moment earlier
    # (connection closed by peer) and n2's poll is slow. Without the shutdown mark this reads as n0 failing first,
    # or, waiting for n2, as n2 lost.
    down = exited("1", at=110.5, t=111.0)
    down["exit"]["shutdown"] = True
    states = {"n0": exited("1", at=110.2, t=111.0), "n1": down, "n2": running(t=105.0)}
    verdict = verdict_of(states, 111.5, 50.0)
    assert verdict["done"] and verdict["failed"] == ["n1", "n0"] and verdict["phases"]["n2"] == "running", verdict
    assert verdict["message"].startswith("n1 (node rank 1) failed: its node shut down while the job ran (torchrun "
                                         "was stopped with it, exit code 1)"), verdict["message"]
    # the same without the mark, but with the agent's own word that it got a signal
    signalled = exited("1", at=110.5, t=111.0)
    signalled["log"]["death_signal"] = "15"
    states["n1"] = signalled
    verdict = verdict_of(states, 111.5, 50.0)
    assert verdict["failed"] == ["n1", "n0"], verdict
    assert "stopped from outside (its agent received signal 15; exit code 1)" in verdict["message"]
    # neither: an exit code 1 is its own failure, in time order, and the silent n2 gets its moment first
    states["n1"] = exited("1", at=110.5, t=111.0)
    assert not verdict_of(states, 111.5, 50.0)["done"]
    assert verdict_of(states, 111.5, 50.0)["phases"]["n2"] == "running"
