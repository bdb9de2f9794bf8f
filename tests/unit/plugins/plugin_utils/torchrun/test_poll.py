"""Polling every node from one process: the poll script against a real run directory, and rounds in which a node
that hangs or refuses holds up nobody."""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import RunDir
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import poll as tr
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.verdict import decide


def sh(script):
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout


def test_poll_script_and_parse(tmp_path):
    run = RunDir(str(tmp_path), "r1")
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    with open(run.log, "w") as handle:
        handle.write("one\ntwo \u00fc\npart")
    with open(run.exit, "w") as handle:
        handle.write('{"result": "exit-code", "code": "exited", "status": "1", "time": 2.5}\n')
    with open(run.meta, "w") as handle:
        handle.write('{"run_id": "r1", "started_at": 1.5, "nproc_per_node": 2}\n')
    res = tr.parse_poll(sh(tr.poll_script(run, 0, wait=0, probe="127.0.0.1:1")), "127.0.0.1:1")
    assert res["active"] is False and res["exit"]["status"] == "1" and res["meta"]["nproc_per_node"] == 2
    size = len("one\ntwo \u00fc\npart".encode())
    assert res["log_start"] == 0 and res["log_offset"] == size and res["log_chunk"] == "one\ntwo \u00fc\npart"
    assert res["probe"]["ok"] is False and res["probe"]["endpoint"] == "127.0.0.1:1"
    # from an offset, bounded, and a rotated log starts over
    res = tr.parse_poll(sh(tr.poll_script(run, 4, max_bytes=3)))
    assert res["log_start"] == size - 3 and res["log_chunk"] == "art"
    assert tr.parse_poll(sh(tr.poll_script(run, size + 100)))["log_start"] == 0
    # a run that never started on the node
    res = tr.parse_poll(sh(tr.poll_script(RunDir(str(tmp_path), "other"), 0)))
    assert res["exit"] is None and res["meta"] is None and res["log_chunk"] == ""
    with pytest.raises(ValueError):
        tr.parse_poll("sudo: a password is required\n")


class FakeConnection(object):
    """A node: runs the poll script locally against its own run directory, or hangs, or refuses."""

    def __init__(self, base, behaviour="ok", active_unit_bin=None):
        self.base = base
        self.behaviour = behaviour
        self.env = None
        if active_unit_bin:  # a systemctl that says the run's unit is running
            self.env = dict(os.environ, PATH="%s:%s" % (active_unit_bin, os.environ["PATH"]))
        self.release = threading.Event()
        self.calls = 0

    def exec_command(self, cmd, sudoable=False):
        self.calls += 1
        if self.behaviour == "hang":
            self.release.wait(30)
        if self.behaviour == "refuse":
            raise OSError("ssh: connect to host 10.0.0.9 port 22: Connection refused")
        proc = subprocess.run(shlex.split(cmd), capture_output=True, env=self.env, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def close(self):
        pass


def node_dir(tmp_path, host, exit_status=None):
    base = tmp_path / host
    run = RunDir(str(base), "r1")
    (base / "runs" / "r1").mkdir(parents=True)
    with open(run.meta, "w") as handle:
        handle.write('{"started_at": 1.0, "nproc_per_node": 1}')
    with open(run.log, "w") as handle:
        handle.write('[default0]:{"event": "joined", "rank": 0, "world_size": 2}\n'
                     '[default0]:{"event": "step", "step": 5, "loss": 0.5}\n')
    if exit_status is not None:
        with open(run.exit, "w") as handle:
            handle.write('{"result": "%s", "code": "exited", "status": "%s", "time": %f}'
                         % ("success" if exit_status == "0" else "exit-code", exit_status, time.time()))
    return str(base)


def test_a_round_polls_every_node_at_once_and_a_hung_node_holds_up_nobody(tmp_path):
    conns = {"n0": FakeConnection(node_dir(tmp_path, "n0", "0")),
             "n1": FakeConnection(node_dir(tmp_path, "n1"), "hang"),
             "n2": FakeConnection(node_dir(tmp_path, "n2", "1"))}
    poller = tr.Poller({"n0": 0, "n1": 1, "n2": 2}, lambda host: conns[host], "/unused", "r1")
    for host, node in poller.nodes.items():  # each fake node has its own base directory
        node.run = RunDir(conns[host].base, "r1")
    began = time.time()
    answered = poller.round(wait=0.0, round_timeout=1.0)
    assert time.time() - began < 5
    assert sorted(answered) == ["n0", "n2"]
    states = poller.states()
    assert states["n0"].phase == "succeeded" and states["n2"].phase == "failed"
    assert states["n0"].log["last_step"]["step"] == 5 and states["n0"].nproc_per_node == 1
    assert states["n1"].t == 0 and poller.nodes["n1"].busy
    # the next round does not pile a second poll onto the hung node; the finished ones are not polled again
    poller.round(wait=0.0, round_timeout=0.2)
    assert conns["n1"].calls == 1 and conns["n0"].calls == 1
    conns["n1"].release.set()
    poller.nodes["n1"].join(time.time() + 5)
    poller.round(wait=0.0, round_timeout=1.0)
    assert poller.states()["n1"].polls == 1


def test_a_node_that_refuses_twice_is_lost_and_named(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text('#!/bin/sh\ncase "$1" in is-active) exit 0;; show) echo active;; esac\n')
    (fake / "systemctl").chmod(0o755)
    conns = {"n0": FakeConnection(node_dir(tmp_path, "n0"), active_unit_bin=str(fake)),
             "n1": FakeConnection("", "refuse")}
    poller = tr.Poller({"n0": 0, "n1": 1}, lambda host: conns[host], str(tmp_path / "n0"), "r1")
    started = time.time()
    poller.round(0.0, 2.0)
    assert not poller.states()["n1"].lost  # one refusal is a hiccup
    poller.round(0.0, 2.0)
    states = poller.states()
    assert "Connection refused" in states["n1"].lost
    assert states["n0"].phase == "running"
    poller.round(0.0, 2.0)  # n0 answers after n1 was lost: n0 is alive, n1 is the cause
    verdict = decide(poller.states(), time.time(), started, {"node_timeout": 20})
    assert verdict.done and verdict.failed[0] == "n1"
    assert verdict.message.startswith("n1 (node rank 1) failed: stopped answering: ssh: connect to host")


def counting_systemctl(tmp_path, active_file, control_group=""):
    """A systemctl that logs each call (``is-active``, ``show:<property>``) and says the run's unit is active while
    ``active_file`` exists; while it is, ``show -p ControlGroup`` answers ``control_group`` (systemd answers an empty
    line for a unit that is not running)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "calls"
    script = ('#!/bin/sh\nif [ "$1" = show ]; then echo "show:$3" >> {calls}; else echo "$1" >> {calls}; fi\n'
              'if [ "$1" = show ] && [ "$3" = ControlGroup ]; then [ -e {active} ] && echo {cg} || echo; exit 0; fi\n'
              '[ -e {active} ] || {{ [ "$1" = show ] && echo inactive; exit 3; }}\n'
              '[ "$1" = show ] && echo active\nexit 0\n')
    (fake / "systemctl").write_text(script.format(calls=shlex.quote(str(calls)), active=shlex.quote(str(active_file)),
                                                  cg=shlex.quote(control_group)))
    (fake / "systemctl").chmod(0o755)
    return dict(os.environ, PATH="%s:%s" % (fake, os.environ["PATH"])), calls


def running_node(tmp_path):
    """A run directory whose unit the counting systemctl says is active (until ``active`` is removed)."""
    run = RunDir(str(tmp_path), "r1")
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    active = tmp_path / "active"
    active.write_text("")
    env, calls = counting_systemctl(tmp_path, active)
    return run, active, env, calls


def test_a_waiting_poll_ends_when_the_exit_record_appears_and_asks_systemd_once_a_second(tmp_path):
    run, active, env, calls = running_node(tmp_path)

    def finish_later():
        time.sleep(1.6)
        with open(run.exit, "w") as handle:
            handle.write('{"result": "success", "code": "exited", "status": "0", "time": 3.0}\n')
        active.unlink()
    threading.Thread(target=finish_later).start()
    began = time.time()
    out = subprocess.run(["sh", "-c", tr.poll_script(run, 0, wait=10)], capture_output=True, text=True, env=env,
                         check=True).stdout
    took = time.time() - began
    res = tr.parse_poll(out)
    assert 1.5 < took < 4, took
    assert res["active"] is False and res["exit"]["status"] == "0"
    # while it waited (1.6 s): is-active at 0, 1 and perhaps 2 s, not every quarter second; then the state
    waits = calls.read_text().split()
    assert 2 <= waits.count("is-active") <= 4, waits
    # the unit's cgroup is asked once (none here: systemd's answer had no such file), the state once at the end
    assert waits.count("show:ControlGroup") == 1 and waits.count("show:ActiveState") == 1, waits


def test_a_waiting_poll_ends_within_a_second_of_a_run_that_ended_without_a_record(tmp_path):
    run, active, env, dummy = running_node(tmp_path)
    threading.Timer(0.5, active.unlink).start()
    began = time.time()
    res = tr.parse_poll(subprocess.run(["sh", "-c", tr.poll_script(run, 0, wait=10)], capture_output=True, text=True,
                                       env=env, check=True).stdout)
    assert time.time() - began < 3 and res["active"] is False and res["exit"] is None


@pytest.mark.parametrize("root", ["v2", "hybrid"])
def test_a_waiting_poll_reads_the_units_cgroup_and_starts_no_process_to_check_it(tmp_path, root):
    """Where the unit's cgroup has a ``cgroup.events`` file (cgroup v2, or the ``unified`` tree of a hybrid layout),
    the wait reads its ``populated`` line with the shell's own ``read``: no systemctl while waiting, and the poll
    ends within a check of the unit's last process ending, record or not."""
    run = RunDir(str(tmp_path), "r1")
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    active = tmp_path / "active"
    active.write_text("")
    unit_cg = "/system.slice/%s" % run.unit
    roots = (str(tmp_path / "cg"), str(tmp_path / "cg" / "unified"))
    events = tmp_path / "cg" / ("unified" if root == "hybrid" else "") / unit_cg.lstrip("/") / "cgroup.events"
    events.parent.mkdir(parents=True)
    events.write_text("populated 1\nfrozen 0\n")
    env, calls = counting_systemctl(tmp_path, active, control_group=unit_cg)

    def last_process_ends():
        time.sleep(1.6)
        events.write_text("populated 0\nfrozen 0\n")
        time.sleep(1.0)  # the unit is still listed a moment after its cgroup emptied
        active.unlink()
    threading.Thread(target=last_process_ends).start()
    began = time.time()
    out = subprocess.run(["sh", "-c", tr.poll_script(run, 0, wait=10, cgroup_roots=roots)], capture_output=True,
                         text=True, env=env, check=True).stdout
    took = time.time() - began
    assert 1.5 < took < 2.5, took
    waits = calls.read_text().split()
    assert waits == ["show:ControlGroup", "show:ActiveState"], waits  # nothing per check while waiting
    assert tr.parse_poll(out)["exit"] is None


@pytest.mark.parametrize("shell", ["sh", "bash"])  # Debian's dash; bash is /bin/sh on RHEL
def test_a_waiting_poll_ends_quietly_when_the_units_cgroup_goes_away(tmp_path, shell):
    """The unit ended and was collected while the poll waited: its cgroup's file is gone, the read fails (quietly,
    without ending the shell) and the poll ends at the next check."""
    run = RunDir(str(tmp_path), "r1")
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    active = tmp_path / "active"
    active.write_text("")
    unit_cg = "/system.slice/%s" % run.unit
    events = tmp_path / "cg" / unit_cg.lstrip("/") / "cgroup.events"
    events.parent.mkdir(parents=True)
    events.write_text("populated 1\nfrozen 0\n")
    env, dummy = counting_systemctl(tmp_path, active, control_group=unit_cg)

    def collected():
        time.sleep(0.6)
        events.unlink()
        active.unlink()
    threading.Thread(target=collected).start()
    began = time.time()
    proc = subprocess.run([shell, "-c", tr.poll_script(run, 0, wait=10, cgroup_roots=(str(tmp_path / "cg"),))],
                          capture_output=True, text=True, env=env, check=True)
    assert time.time() - began < 1.5
    assert proc.stderr == "" and tr.parse_poll(proc.stdout)["active"] is False
