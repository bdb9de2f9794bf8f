"""The heartbeat an action plugin prints while a long call runs (issue 19: every step longer than ~20 s shows
progress): nothing for a quick call, a line every interval for a slow one, and it stops with the call."""

from __future__ import annotations

import time

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.progress import Heartbeat


class Lines(object):
    def __init__(self):
        self.lines = []

    def display(self, msg):
        self.lines.append(msg)


def test_a_quick_call_prints_nothing():
    out = Lines()
    with Heartbeat(out, "creating/reconciling the local nodes of cluster c1", every=5):
        time.sleep(0.05)
    assert out.lines == []


def test_a_slow_call_prints_a_line_every_interval_and_stops_with_it():
    out = Lines()
    with Heartbeat(out, "creating/reconciling the local nodes of cluster c1", every=0.2):
        time.sleep(0.75)
    printed = len(out.lines)
    assert 2 <= printed <= 4, out.lines
    assert all(line.startswith("creating/reconciling the local nodes of cluster c1: still working (")
               for line in out.lines)
    time.sleep(0.5)
    assert len(out.lines) == printed


def test_a_failing_display_does_not_break_the_call():
    class Broken(object):
        def display(self, msg):
            raise RuntimeError("no display")

    with Heartbeat(Broken(), "x", every=0.05):
        time.sleep(0.2)


def test_the_call_s_exception_goes_through():
    out = Lines()
    try:
        with Heartbeat(out, "x", every=10):
            raise ValueError("boom")
    except ValueError as exc:
        assert str(exc) == "boom"
    else:
        raise AssertionError("the exception was swallowed")
