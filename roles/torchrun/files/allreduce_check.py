# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cross-node health check (playbooks/verify.yml): an all-reduce over every rank, checked and timed.

Every rank contributes rank+1; the sum must be world*(world+1)/2 on every rank. Then a buffer of
--size-mb is all-reduced --iters times and each node reports the bandwidth it saw (algorithm and
bus bandwidth, as nccl-tests define them). JSON lines, like the example job:
  {"event": "joined", "rank": 0, "world_size": 4, ...}
  {"event": "allreduce", "rank": 0, "sum_ok": true, "busbw_gbps": 1.9, ...}   local rank 0 of each node
Exits 1 (naming the rank) when a sum is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist


def log(event, **fields):
    sys.stdout.write(json.dumps(dict({"event": event, "time": round(time.time(), 3)}, **fields)) + "\n")
    sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--size-mb", type=float, default=16.0, help="all-reduce buffer size for the bandwidth test")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--backend", choices=["auto", "gloo", "nccl"], default="auto")
    args = parser.parse_args(argv)
    backend = args.backend
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    log("joined", rank=rank, local_rank=local_rank, world_size=world, host=socket.gethostname(), backend=backend,
        device=str(device), torch=torch.__version__)

    expected = world * (world + 1) / 2
    probe = torch.full((8,), float(rank + 1), device=device)
    dist.all_reduce(probe)
    got = probe.cpu().tolist()
    ok = all(abs(v - expected) < 1e-6 for v in got)
    everyone = torch.tensor([1 if ok else 0], device=device)
    dist.all_reduce(everyone, op=dist.ReduceOp.MIN)

    count = max(1, int(args.size_mb * 1024 * 1024 / 4))
    buf = torch.ones(count, dtype=torch.float32, device=device)
    for dummy in range(args.warmup):
        dist.all_reduce(buf)
    if backend == "nccl":
        torch.cuda.synchronize()
    dist.barrier()
    began = time.time()
    for dummy in range(args.iters):
        dist.all_reduce(buf)
    if backend == "nccl":
        torch.cuda.synchronize()
    elapsed = (time.time() - began) / args.iters
    size_bytes = count * 4
    algbw = size_bytes / elapsed / 1e9
    busbw = algbw * 2 * (world - 1) / world if world > 1 else algbw
    if local_rank == 0 or not ok:
        log("allreduce", rank=rank, world_size=world, host=socket.gethostname(), sum_ok=ok,
            all_ranks_ok=bool(everyone.item()), expected=expected, got=got[0], size_mb=round(size_bytes / 2 ** 20, 2),
            iters=args.iters, time_ms=round(elapsed * 1000, 2), algbw_gbps=round(algbw, 3),
            busbw_gbps=round(busbw, 3))
    dist.barrier()
    dist.destroy_process_group()
    if not ok:
        sys.stderr.write("rank %d on %s: all-reduce sum %s, expected %s\n" % (rank, socket.gethostname(), got, expected))
        return 1
    return 0 if everyone.item() else 1


if __name__ == "__main__":
    sys.exit(main())
