# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cross-node TensorFlow check (playbooks/verify.yml): an all-reduce over every worker of a
MultiWorkerMirroredStrategy cluster (TF_CONFIG, as the torchrun role's TensorFlow launch sets it), checked and timed.

Every replica of worker (node) i contributes i+1; the sum must be R * W(W+1)/2 everywhere (W workers, R replicas per
worker). Then a buffer of --size-mb is all-reduced --iters times and each worker reports the bandwidth it saw
(algorithm and bus bandwidth, as nccl-tests define them). JSON lines, like the PyTorch check:
  {"event": "joined", "rank": 0, "world_size": 2, "replicas": 2, ...}
  {"event": "allreduce", "rank": 0, "sum_ok": true, "all_ranks_ok": true, "busbw_gbps": 0.4, ...}
Exits 1 (naming the worker) when a sum is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402  (after the environment TensorFlow reads at import)


def log(event, **fields):
    sys.stdout.write(json.dumps(dict({"event": event, "time": round(time.time(), 3)}, **fields)) + "\n")
    sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--size-mb", type=float, default=16.0, help="all-reduce buffer size for the bandwidth test")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    world = max(len((config.get("cluster") or {}).get("worker") or []), 1)
    rank = int((config.get("task") or {}).get("index", 0))
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    log("joined", rank=rank, world_size=world, replicas=replicas, host=socket.gethostname(),
        gpus=len(tf.config.list_physical_devices("GPU")), tensorflow=tf.__version__)

    def reduce(value):
        """The SUM all-reduce of ``value`` (an eager tensor) over every replica of every worker, as the example's
        resume agreement does it."""
        def step():
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, value)
        return tf.function(lambda: strategy.run(step))

    def first_local(result):
        return strategy.experimental_local_results(result)[0].numpy()

    # the sum: every replica of worker i gives i+1
    expected = (replicas // world) * world * (world + 1) / 2.0
    got = first_local(reduce(tf.constant([float(rank + 1)] * 8))()).tolist()
    ok = all(abs(v - expected) < 1e-6 for v in got)
    # every worker's verdict: the sum of every replica's 1 (ok) or 0
    everyone = first_local(reduce(tf.constant([1.0 if ok else 0.0]))()).tolist()[0]
    all_ok = everyone >= replicas - 1e-6

    count = max(1, int(args.size_mb * 1024 * 1024 / 4))
    bandwidth = reduce(tf.ones([count], tf.float32))
    for dummy in range(args.warmup):
        first_local(bandwidth())
    began = time.time()
    for dummy in range(args.iters):
        first_local(bandwidth())
    elapsed = (time.time() - began) / args.iters
    size_bytes = count * 4
    algbw = size_bytes / elapsed / 1e9
    busbw = algbw * 2 * (replicas - 1) / replicas if replicas > 1 else algbw
    log("allreduce", rank=rank, world_size=world, replicas=replicas, host=socket.gethostname(), sum_ok=ok,
        all_ranks_ok=bool(all_ok), expected=expected, got=got[0], size_mb=round(size_bytes / 2 ** 20, 2),
        iters=args.iters, time_ms=round(elapsed * 1000, 2), algbw_gbps=round(algbw, 3), busbw_gbps=round(busbw, 3))
    if not ok:
        sys.stderr.write("worker %d on %s: all-reduce sum %s, expected %s\n"
                         % (rank, socket.gethostname(), got, expected))
        return 1
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
