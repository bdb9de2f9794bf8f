"""plugins/action/torchrun_watch.py: the watch's loop over every node at once, with a scripted Poller in place of
the nodes (plugin_utils torchrun.poll and torchrun.verdict have their own tests)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ansible.errors import AnsibleActionFail, AnsibleError

from action_harness import make_action
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.verdict import NodeState

HOSTS = {"n0": 0, "n1": 1}
RANKS = {"n0": [0, 1], "n1": [2, 3]}


def running(host, step=None, now=None):
    log = {"attempted": True, "joined": {"round": 0}, "ranks": RANKS[host], "tail": ["a line"]}
    if step:
        log["last_step"] = {"step": step, "loss": 1.0 / step, "samples_per_s": 100.0}
    return {"active": True, "started": True, "started_at": 100.0, "nproc_per_node": 2, "exit": None, "log": log}


def exited(host, status="0", at=None):
    state = running(host, step=50)
    state.update(active=False, exit={"result": "success" if status == "0" else "exit-code", "code": "exited",
                                     "status": status, "time": at or time.time()})
    return state


class ScriptedPoller(object):
    """Stands in for plugin_utils torchrun.poll.Poller: each round gives every node the next scripted state (the
    last one stays)."""
    made = []

    def __init__(self, hosts, connect, base_dir, run_id, probe=None, timeout=0):
        self.hosts, self.base_dir, self.run_id, self.probe, self.timeout = hosts, base_dir, run_id, probe, timeout
        self.connect = connect
        self.rounds, self.closed, self.probed = [], False, []
        self.nodes = dict((h, type("Node", (), {})()) for h in hosts)
        self._states = {}
        ScriptedPoller.made.append(self)

    def round(self, wait, round_timeout, probe_hosts=()):
        self.rounds.append((wait, round_timeout))
        self.probed.extend(probe_hosts)
        raw = self.script[min(len(self.rounds), len(self.script)) - 1]
        now = time.time()
        for host, rank in self.hosts.items():
            state = NodeState.from_dict(dict(raw[host], host=host, node_rank=rank, t=now, asked=now - 1))
            self._states[host] = state
            node = self.nodes[host]
            node.state, node.finished = state, bool(state.exit)
        time.sleep(0.01)

    def states(self):
        return dict(self._states)

    def close(self):
        self.closed = True


@pytest.fixture
def watch(monkeypatch):
    """Runs the action with ``args`` over a scripted poller; returns (result, shown, poller)."""
    def run(args, script):
        action, shown, plugin = make_action("torchrun_watch", args, monkeypatch)
        monkeypatch.setattr(ScriptedPoller, "script", script, raising=False)
        monkeypatch.setattr(plugin, "Poller", ScriptedPoller)
        monkeypatch.setattr(plugin, "host_connection", lambda action, host, task_vars: "connection to %s" % host)
        result = action.run(task_vars={"hostvars": {}})
        return result, shown, ScriptedPoller.made[-1]
    return run


def test_a_job_watched_to_success(watch):
    script = [dict((h, running(h)) for h in HOSTS), dict((h, running(h, step=10)) for h in HOSTS),
              dict((h, exited(h)) for h in HOSTS)]
    result, shown, poller = watch({"run_id": "r1", "hosts": {"n0": "0", "n1": 1}, "interval": 0.2,
                                   "started": time.time() - 5, "base_dir": "/b"}, script)
    assert poller.closed and poller.hosts == HOSTS and poller.base_dir == "/b" and poller.run_id == "r1"
    assert poller.connect("n1") == "connection to n1"  # each node's own connection, from its inventory
    assert len(poller.rounds) == 3 and poller.rounds[0] == (0.2, 3.2)
    verdict = result["verdict"]
    assert verdict["done"] and verdict["status"] == "succeeded"
    assert verdict["phases"] == {"n0": "succeeded", "n1": "succeeded"}
    assert sorted(result["nodes"]) == ["n0", "n1"] and result["nodes"]["n1"]["log"]["ranks"] == [2, 3]
    assert result["lost"] == [] and result["changed"] is False
    times = result["times"]
    assert times["running"] is not None and times["first_step"] is not None
    assert times["running"] <= times["first_step"] <= times["ended"]
    # progress: the first round, every phase change, and the end
    assert shown.lines[0].startswith("torchrun r1 [") and "2/2 nodes up, rendezvous 2/2, ranks in 4/4" in shown.lines[0]
    assert "| step 50 loss 0.02 (100.0 samples/s)" in shown.lines[-1]


def test_a_failed_node_ends_the_watch_naming_it(watch):
    failing = {"n0": running("n0", step=10), "n1": exited("n1", status="1", at=time.time())}
    result, shown, poller = watch({"run_id": "r2", "hosts": HOSTS, "interval": 0.2, "node_timeout": 1.0}, [failing])
    verdict = result["verdict"]
    assert verdict["status"] == "failed" and verdict["failed"][0] == "n1"
    assert "n1 (node rank 1) failed" in verdict["message"]
    assert "n1 failed" in shown.lines[-1]
    assert poller.closed


def test_once_polls_one_round_and_gives_no_verdict(watch):
    result, shown, poller = watch({"run_id": "r3", "hosts": HOSTS, "once": True, "node_timeout": 30},
                                  [dict((h, exited(h)) for h in HOSTS)])
    assert len(poller.rounds) == 1 and poller.rounds[0] == (0.0, 30)
    assert "verdict" not in result and result["nodes"]["n0"]["exit"]["status"] == "0"
    assert shown.lines == [] and poller.closed


def test_nodes_that_never_attempted_the_rendezvous_are_probed(watch):
    pending = dict((h, dict(running(h), log={"attempted": False})) for h in HOSTS)
    script = [pending] + [pending] * 3 + [dict((h, exited(h)) for h in HOSTS)]
    result, shown, poller = watch({"run_id": "r4", "hosts": HOSTS, "interval": 0.2, "started": time.time() - 60,
                                   "probe": "10.0.0.1:29400"}, script)
    assert sorted(set(poller.probed)) == ["n0", "n1"] and poller.probe == "10.0.0.1:29400"
    assert result["verdict"]["status"] == "succeeded"


def test_no_hosts_is_an_error(monkeypatch):
    action, dummy, dummy = make_action("torchrun_watch", {"run_id": "r", "hosts": {}}, monkeypatch)
    with pytest.raises(AnsibleError, match="no hosts to watch"):
        action.run(task_vars={})


def test_an_undocumented_option_is_refused(monkeypatch):
    action, dummy, dummy = make_action("torchrun_watch", {"run_id": "r", "hosts": HOSTS, "bogus": 1}, monkeypatch)
    with pytest.raises(AnsibleActionFail, match="bogus"):
        action.run(task_vars={})


class Runner(object):
    """Stands in for the action that runs the stop command over a node's connection (become)."""
    ran = []

    def __init__(self, connection):
        self.connection = connection

    def _low_level_execute_command(self, cmd, sudoable=True):
        Runner.ran.append((self.connection, cmd, sudoable))
        return {"rc": 0, "stdout": "", "stderr": ""}


@pytest.fixture
def interrupted(monkeypatch):
    """Runs the watch with ``args``; its second round is interrupted by SIGTERM (as ansible-playbook passes a Ctrl-C
    on to its workers). The handler in place before stands for the worker's own (which ends the process). Returns
    (what the action raised, the signals the worker's handler got, the stop commands run)."""
    import signal as signal_module

    def run(args):
        action, dummy, plugin = make_action("torchrun_watch", args, monkeypatch)
        script = [dict((h, running(h)) for h in HOSTS), dict((h, running(h, step=10)) for h in HOSTS)]
        monkeypatch.setattr(ScriptedPoller, "script", script, raising=False)
        rounds = []

        class InterruptedPoller(ScriptedPoller):
            def round(self, wait, round_timeout, probe_hosts=()):
                super(InterruptedPoller, self).round(wait, round_timeout, probe_hosts)
                rounds.append(1)
                if len(rounds) == 2:
                    os.kill(os.getpid(), signal_module.SIGTERM)
                    time.sleep(0.5)  # the handler runs here
        monkeypatch.setattr(plugin, "Poller", InterruptedPoller)
        monkeypatch.setattr(plugin, "host_connection",
                            lambda action, host, task_vars, become=False: "%s connection to %s" % (
                                "become" if become else "plain", host))
        monkeypatch.setattr(plugin.action_loader, "get", lambda name, connection=None, **kw: Runner(connection))
        Runner.ran = []
        worker = []
        before = signal_module.signal(signal_module.SIGTERM, lambda s, f: worker.append(s))
        try:
            with pytest.raises(AnsibleError) as err:
                action.run(task_vars={"hostvars": {}})
            assert signal_module.getsignal(signal_module.SIGTERM) is not None
        finally:
            signal_module.signal(signal_module.SIGTERM, before)
        return err.value, worker, sorted(Runner.ran)
    return run


def test_an_interrupted_watch_stops_a_direct_launch_on_every_node_then_ends_as_the_worker_would(interrupted):
    error, worker, ran = interrupted({"run_id": "r1", "hosts": HOSTS, "interval": 0.2})
    assert "interrupted" in str(error)
    assert worker == [signal.SIGTERM]  # handed on to the worker's own handler once the run was stopped
    assert ran == [("become connection to n0", "systemctl stop --no-block aiinfra-torchrun-r1.service", True),
                   ("become connection to n1", "systemctl stop --no-block aiinfra-torchrun-r1.service", True)]


def test_an_interrupted_watch_cancels_the_slurm_job_on_its_controller(interrupted):
    error, worker, ran = interrupted({"run_id": "r1", "hosts": HOSTS, "interval": 0.2, "slurm_job_id": "42",
                                      "slurm_host": "n1"})
    assert worker == [signal.SIGTERM]
    assert ran == [("become connection to n1", "scancel 42", True)]


def test_an_interrupted_watch_leaves_the_run_when_told(interrupted):
    error, worker, ran = interrupted({"run_id": "r1", "hosts": HOSTS, "interval": 0.2, "on_interrupt": "leave"})
    assert worker == [signal.SIGTERM] and ran == []
