"""plugins/plugin_utils/torchrun/interrupt.py: what stops a run when the play is interrupted, run on every node at
once, a node that fails or hangs said rather than raised; signals held while the run is being stopped."""

from __future__ import annotations

import os
import signal
import time

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import interrupt


def test_a_slurm_run_is_cancelled_on_its_controller_else_the_unit_stopped_everywhere():
    assert interrupt.stop_commands(["a", "b"], "u.service", "17", "b") == {"b": "scancel 17"}
    stop = "systemctl stop --no-block u.service"
    assert interrupt.stop_commands(["a", "b"], "u.service") == {"a": stop, "b": stop}


def test_every_node_at_once_a_failure_or_a_hang_is_said():
    def execute(host, command):
        if host == "down":
            raise OSError("ssh: connect to host down port 22: No route to host\nmore")
        if host == "slow":
            time.sleep(5)
        return (0 if host == "ok" else 1), "", "" if host == "ok" else "scancel: error: Invalid job id"
    began = time.time()
    res = interrupt.run_everywhere({"ok": "x", "bad": "x", "down": "x", "slow": "x"}, execute, timeout=0.5)
    assert time.time() - began < 3
    assert res == {"ok": (True, ""), "bad": (False, "scancel: error: Invalid job id"),
                   "down": (False, "ssh: connect to host down port 22: No route to host"),
                   "slow": (False, "no answer within 0 s")}


def test_signals_raise_while_interruptible_and_are_held_while_stopping():
    """As the watch and the queue wait use it: the first signal raises, a second one right after (ansible-playbook's
    SIGTERM to its workers follows its SIGINT at once) is ignored, those while stopping are held, then the first
    goes to the handler that was there before (the worker's own)."""
    got = []
    before = signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    interrupted = None
    try:
        with interrupt.interruptible() as previous:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            except interrupt.Interrupted as exc:
                interrupted = exc.signum
                os.kill(os.getpid(), signal.SIGTERM)  # ignored, not raised
                time.sleep(0.2)
                with interrupt.held(restore=previous) as came:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.2)
                assert came == [signal.SIGTERM] and got == []
        assert interrupted == signal.SIGTERM
        interrupt.redeliver(interrupted, previous)
        assert got == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is previous[signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)
