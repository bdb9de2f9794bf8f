"""plugins/action/torchrun_slurm.py: the wait in the Slurm queue runs the module in slices (one result for the whole
wait), and interrupting the play meanwhile cancels the job before the worker's own handler ends it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ansible.errors import AnsibleError

from action_harness import make_action

ARGS = {"state": "running", "run_id": "r1", "job_id": "7", "timeout": 0, "interval": 0.1}


def scripted(monkeypatch, action, plugin, answers, on_call=None):
    """The module's answers, one per run of it (the last one stays); returns the arguments of each run."""
    calls = []

    def execute(module_name=None, module_args=None, task_vars=None):
        calls.append(dict(module_args))
        if on_call:
            on_call(len(calls))
        return dict(answers[min(len(calls), len(answers)) - 1])
    monkeypatch.setattr(action, "_execute_module", execute)
    monkeypatch.setattr(action, "_remove_tmp_path", lambda path: None)
    return calls


def pending(ahead):
    return {"failed": True, "job_state": "PENDING", "ahead": ahead, "msg": "still waits"}


def test_the_wait_runs_in_slices_and_adds_up(monkeypatch):
    action, shown, plugin = make_action("torchrun_slurm", ARGS, monkeypatch)
    monkeypatch.setattr(plugin, "SLICE", 1)
    calls = scripted(monkeypatch, action, plugin, [pending(["5"]), pending(["5", "6"]),
                                                   {"job_state": "RUNNING", "ahead": [], "changed": False}])
    result = action.run(task_vars={})
    assert [c["timeout"] for c in calls] == [1, 1, 1] and all(c["state"] == "running" for c in calls)
    assert not result.get("failed") and result["job_state"] == "RUNNING" and result["ahead"] == ["5", "6"]
    assert result["message"].startswith("run r1: Slurm job 7 is running (it waited ")
    assert result["message"].endswith("s in the Slurm queue behind jobs 5, 6)")
    # each slice it still waited is said in the play's output
    assert [line.split(" (")[0] + line.split(")")[-1] for line in shown.lines] == [
        "run r1: Slurm job 7 still waits in the Slurm queue behind job 5",
        "run r1: Slurm job 7 still waits in the Slurm queue behind jobs 5, 6"]


def test_the_queue_timeout_still_counts_over_the_slices(monkeypatch):
    action, dummy, plugin = make_action("torchrun_slurm", dict(ARGS, timeout=2), monkeypatch)
    monkeypatch.setattr(plugin, "SLICE", 1)
    calls = scripted(monkeypatch, action, plugin, [pending([])], on_call=lambda n: time.sleep(1.05))
    result = action.run(task_vars={})
    assert 2 <= len(calls) <= 3 and result["failed"]
    assert result["msg"] == ("run r1: Slurm job 7 still waits in the Slurm queue after 2 s "
                             "(torchrun_slurm_queue_timeout)")


def test_other_states_run_the_module_once(monkeypatch):
    action, dummy, plugin = make_action("torchrun_slurm", {"state": "cancelled", "job_id": "7"}, monkeypatch)
    calls = scripted(monkeypatch, action, plugin, [{"changed": True, "job_id": "7"}])
    assert action.run(task_vars={})["changed"] and calls == [{"state": "cancelled", "job_id": "7"}]


@pytest.mark.parametrize("on_interrupt, cancelled", [("stop", True), ("leave", False)])
def test_interrupting_the_wait_cancels_the_job_then_ends_as_the_worker_would(monkeypatch, on_interrupt, cancelled):
    action, dummy, plugin = make_action("torchrun_slurm", dict(ARGS, on_interrupt=on_interrupt), monkeypatch)
    monkeypatch.setattr(plugin, "SLICE", 1)

    def interrupt_second(n):
        if n == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
    calls = scripted(monkeypatch, action, plugin, [pending([]), {"changed": True}], on_call=interrupt_second)
    worker = []
    before = signal.signal(signal.SIGTERM, lambda s, f: worker.append(s))
    try:
        with pytest.raises(AnsibleError, match="interrupted"):
            action.run(task_vars={})
    finally:
        signal.signal(signal.SIGTERM, before)
    assert worker == [signal.SIGTERM]
    assert [c["state"] for c in calls] == ["running", "running"] + (["cancelled"] if cancelled else [])
    if cancelled:
        assert calls[-1] == {"state": "cancelled", "job_id": "7", "run_id": "r1"}
