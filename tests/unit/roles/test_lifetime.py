"""The lifetime check's decision (roles/gpu_cluster/files/aiinfra_lifetime.py): when a node stops itself."""

from __future__ import annotations

import importlib.util
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SPEC = importlib.util.spec_from_file_location(
    "aiinfra_lifetime", os.path.join(ROOT, "roles", "gpu_cluster", "files", "aiinfra_lifetime.py"))
lifetime = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(lifetime)

T0 = 1796085601.0  # 2026-12-01T00:40:01Z
IDLE = {"idle_seconds": 600, "deadline": "", "ttl_seconds": 0}


def test_the_first_check_starts_the_idle_clock():
    action, reason, state = lifetime.decide(T0, IDLE, {}, "boot-1", None)
    assert action == "keep" and state["last_busy"] == T0 and "idle for 0 s of 600 s" in reason


def test_idle_for_the_whole_idle_time_stops_and_one_second_less_keeps():
    _a, _r, state = lifetime.decide(T0, IDLE, {}, "boot-1", None)
    assert lifetime.decide(T0 + 599, IDLE, state, "boot-1", None)[0] == "keep"
    action, reason, _s = lifetime.decide(T0 + 600, IDLE, state, "boot-1", None)
    assert action == "stop" and reason.startswith("idle for 600 s")


def test_a_busy_check_restarts_the_idle_clock():
    _a, _r, state = lifetime.decide(T0, IDLE, {}, "boot-1", None)
    action, _r, state = lifetime.decide(T0 + 500, IDLE, state, "boot-1", "job unit aiinfra-torchrun-x.service active")
    assert action == "keep" and state["last_busy"] == T0 + 500
    assert lifetime.decide(T0 + 1000, IDLE, state, "boot-1", None)[0] == "keep"
    assert lifetime.decide(T0 + 1100, IDLE, state, "boot-1", None)[0] == "stop"


def test_a_new_boot_starts_the_idle_clock_again():
    _a, _r, state = lifetime.decide(T0, IDLE, {}, "boot-1", None)
    action, _r, state = lifetime.decide(T0 + 5000, IDLE, state, "boot-2", None)
    assert action == "keep" and state["last_busy"] == T0 + 5000


def test_no_idle_limit_never_stops_an_idle_node():
    config = {"idle_seconds": 0, "deadline": "", "ttl_seconds": 0}
    _a, _r, state = lifetime.decide(T0, config, {}, "b", None)
    assert lifetime.decide(T0 + 10 ** 7, config, state, "b", None)[0] == "keep"


def test_the_deadline_stops_even_a_busy_node():
    config = {"idle_seconds": 0, "deadline": "2026-12-01T02:10:01Z", "ttl_seconds": 5400}
    assert lifetime.decide(T0 + 5399, config, {}, "b", "GPU utilisation 97%")[0] == "keep"
    action, reason, _s = lifetime.decide(T0 + 5400, config, {}, "b", "GPU utilisation 97%")
    assert action == "stop" and reason == "time to live reached (deadline 2026-12-01T02:10:01Z)"


def test_without_a_deadline_from_the_cloud_the_ttl_counts_from_the_first_check_and_survives_a_reboot():
    config = {"idle_seconds": 0, "deadline": "", "ttl_seconds": 3600}
    _a, _r, state = lifetime.decide(T0, config, {}, "boot-1", None)
    assert state["deadline"] == T0 + 3600
    _a, _r, state = lifetime.decide(T0 + 1800, config, state, "boot-2", None)
    assert state["deadline"] == T0 + 3600
    assert lifetime.decide(T0 + 3600, config, state, "boot-2", None)[0] == "stop"


class Run(object):
    """subprocess.run for busy_now: systemctl's list of active job units, nvidia-smi's utilisations (None: absent)."""

    def __init__(self, units="", gpus=None):
        self.units, self.gpus, self.calls = units, gpus, []

    def __call__(self, cmd, **kwargs):
        self.calls.append(cmd)
        if cmd[0] == "systemctl":
            return subprocess.CompletedProcess(cmd, 0, self.units, "")
        if self.gpus is None:
            raise FileNotFoundError("nvidia-smi")
        return subprocess.CompletedProcess(cmd, 0, self.gpus, "")


@pytest.mark.parametrize("units, gpus, busy", [
    ("aiinfra-torchrun-job1.service loaded active running job\n", None, "job unit aiinfra-torchrun-job1.service active"),
    ("", None, None),                               # a CPU node without a job unit: idle
    ("", "0\n3\n4\n0\n", None),                     # every GPU under 5 %: idle
    ("", "0\n71\n", "GPU utilisation 0/71% (threshold 5%)"),
    ("", "5\n", "GPU utilisation 5% (threshold 5%)"),  # at the threshold counts as busy
])
def test_busy_is_a_job_unit_or_a_gpu_at_the_threshold(units, gpus, busy):
    run = Run(units, gpus)
    assert lifetime.busy_now({"gpu_percent": 5, "unit_prefix": "aiinfra-torchrun-"}, run=run) == busy
    assert run.calls[0][-1] == "aiinfra-torchrun-*"
