"""Reading a node's torchrun log in chunks."""

from __future__ import annotations

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import log as tr

# -- log parsing ---------------------------------------------------------------------------------

AGENT = "I1122 12:47:43.079000 2114 torch/distributed/elastic/agent/server/api.py:%d] "
LOG = "\n".join([
    "W1122 12:47:41.608000 2114 torch/distributed/run.py:874] Setting OMP_NUM_THREADS environment variable",
    AGENT % 707 + "[default] Rendezvous'ing worker group",
    AGENT % 553 + "[default] Rendezvous complete for workers. Result:",
    AGENT % 553 + "  restart_count=0",
    AGENT % 553 + "  master_addr=aiinfra-rank-00000",
    AGENT % 553 + "  group_rank=1",
    AGENT % 553 + "  group_world_size=3",
    '[default0]:{"event": "joined", "time": 1.0, "rank": 2, "local_rank": 0, "world_size": 6, "restart": 0}',
    '[default1]:{"event": "joined", "time": 1.0, "rank": 3, "local_rank": 1, "world_size": 6, "restart": 0}',
    '[default0]:{"event": "resume", "time": 2.0, "step": 40, "from_rank": 0}',
    '[default0]:{"event": "step", "time": 3.0, "step": 41, "loss": 0.9, "samples_per_s": 100.0, "world_size": 6}',
    '[default0]:{"event": "checkpoint", "time": 3.5, "step": 50, "path": "/c/ckpt-00000050.pt"}',
    '[default0]:{"event": "step", "time": 4.0, "step": 50, "loss": 0.5, "samples_per_s": 120.0, "world_size": 6}',
    AGENT % 944 + "[default] Worker group FAILED. 1/1 attempts left; will restart worker group",
    AGENT % 553 + "[default] Rendezvous complete for workers. Result:",
    AGENT % 553 + "  restart_count=1",
    AGENT % 553 + "  group_rank=1",
    AGENT % 553 + "  group_world_size=3",
    "[default1]:[rank3]: RuntimeError: Connection closed by peer",
    '[default0]:{"event": "done", "time": 9.0, "step": 60, "loss": 0.4, "eval_acc": 0.9, "world_size": 6}',
    "",
])


@pytest.mark.parametrize("chunk", [7, 64, len(LOG)])
def test_log_state_in_chunks(chunk):
    state = tr.LogState(keep_steps=True)
    for i in range(0, len(LOG), chunk):
        state.feed(LOG[i:i + chunk])
    state.finish()
    snap = state.snapshot()
    assert snap["attempted"] is True
    assert snap["joined"] == {"round": 1, "group_rank": 1, "world": 3}
    assert snap["ranks"] == [2, 3] and snap["world_size"] == 6
    assert snap["restarts"] == 1 and snap["restart_requests"] == 1
    assert snap["resume"]["step"] == 40 and snap["first_step"]["step"] == 41
    assert snap["last_step"]["step"] == 60 and snap["done"]["eval_acc"] == 0.9
    assert snap["last_checkpoint"]["step"] == 50
    assert snap["last_metrics"]["event"] == "done"
    assert [s["step"] for s in state.steps] == [41, 50, 60]
    assert any("Connection closed by peer" in e for e in snap["errors"])
    assert snap["tail"][-1].startswith("[default0]:{\"event\": \"done\"")


def test_log_state_without_agent_info_lines_or_prefixes():
    state = tr.parse_log('{"step": 1, "loss": 2.0}\nnot json {\n{"event": "allreduce", "busbw_gbps": 1.5}\n')
    assert state.attempted is False and state.joined is None
    assert state.last_step == {"step": 1, "loss": 2.0}
    assert state.last_metrics["busbw_gbps"] == 1.5


def test_the_signal_torchruns_agent_received_is_kept():
    # what torchrun 2.x printed on a node whose container was stopped (the agent exits 1 after it)
    state = tr.parse_log("W1205 23:15:56.149000 1204 torch/distributed/elastic/agent/server/api.py:753] Received 15 "
                         "death signal, shutting down workers\n"
                         "W1205 23:15:56.150000 1204 torch/distributed/elastic/multiprocessing/api.py:1028] Sending "
                         "process 1218 closing signal SIGTERM\n")
    assert state.snapshot()["death_signal"] == "15"
    # a worker stopped by its own agent after a peer failed is not the agent receiving a signal
    assert tr.parse_log(LOG).snapshot()["death_signal"] is None
    # nor is a training script that prints the words (its lines carry torchrun's [default0]: prefix), with or
    # without the agent's logger format
    for line in ("[default0]:W1205 23:15:56.149000 1204 torch/distributed/elastic/agent/server/api.py:753] Received "
                 "15 death signal, shutting down workers", "[default0]:Received 15 death signal",
                 "Received 15 death signal"):
        assert tr.parse_log(line + "\n").snapshot()["death_signal"] is None, line
