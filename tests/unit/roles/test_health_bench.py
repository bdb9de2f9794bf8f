"""The health gate's bench script (roles/gpu_cluster/files/aiinfra_health_bench.py), its TCP pairs for real on the
loopback: 3 "nodes" (processes) in the rounds of the schedule, each printing its pairs' figures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from conftest import ROOT

BENCH = os.path.join(ROOT, "roles", "gpu_cluster", "files", "aiinfra_health_bench.py")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_tcp_pairs_in_rounds_agree_on_each_pair():
    schedule = [[["a", "b"]], [["a", "c"]], [["b", "c"]]]
    addresses = {"a": "127.0.0.1", "b": "127.0.0.1", "c": "127.0.0.1"}
    port = free_port()
    procs = dict((me, subprocess.Popen(
        [sys.executable, BENCH, "pairs", "--me", me, "--schedule", json.dumps(schedule), "--addresses",
         json.dumps(addresses), "--method", "tcp", "--port", str(port), "--bytes", str(2 << 20), "--iters", "2",
         "--timeout", "60"], stdout=subprocess.PIPE, text=True)) for me in "abc")
    results = dict((me, json.loads(proc.communicate(timeout=120)[0].splitlines()[-1])) for me, proc in procs.items())
    assert all(proc.returncode == 0 for proc in procs.values())
    assert [(r["round"], r["peer"]) for r in results["a"]["pairs"]] == [(0, "b"), (1, "c")]
    assert [(r["round"], r["peer"]) for r in results["c"]["pairs"]] == [(1, "a"), (2, "b")]
    for me, result in results.items():
        assert result["method"] == "tcp" and result["bytes"] == 2 << 20
        for row in result["pairs"]:
            assert row["busbw_gbs"] > 0 and "error" not in row, row
            other = [r for r in results[row["peer"]]["pairs"] if r["round"] == row["round"]][0]
            assert other["busbw_gbs"] == row["busbw_gbs"]      # both sides report the slower side's figure


def test_a_partner_that_never_comes_is_an_error_not_a_hang():
    port = free_port()
    out = subprocess.run([sys.executable, BENCH, "pairs", "--me", "a", "--schedule", '[[["a", "b"]]]', "--addresses",
                          '{"a": "127.0.0.1", "b": "127.0.0.1"}', "--method", "tcp", "--port", str(port),
                          "--timeout", "2"], capture_output=True, text=True, timeout=60, check=True).stdout
    row = json.loads(out.splitlines()[-1])["pairs"][0]
    assert row["busbw_gbs"] is None and row["error"] == "TimeoutError: timed out", row
