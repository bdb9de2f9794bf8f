# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health gate's bandwidth measurements on a node (run by the module aiinfra.gpu_cluster.node_health, with the
PyTorch virtualenv's python when the node has one, else python3). Prints one JSON object on its last line.

``local``: the node's own all-reduce over its GPUs (NCCL, one process per GPU, torch.multiprocessing), as
nccl-tests' all_reduce_perf reports it: bus bandwidth = size / time x 2 (n - 1) / n, in GB/s (1e9 bytes).

``pairs``: this node against others, in rounds (``--schedule``: a JSON list of rounds, each a list of [host, host]
pairs; every node is in at most one pair a round, so no two measurements share a node). In each round this node
and its partner run a 2-rank all-reduce (``nccl`` on GPU nodes, ``gloo`` on CPU nodes: the bus bandwidth of 2 ranks
is size / time) or, with ``tcp`` (no torch on the node), a plain TCP exchange: ``--bytes`` each way, the figure the
same size / time. The lower host of a pair (in the schedule's order) listens, the other connects.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import time

GB = 1e9


def route_ifname(address):
    """The interface the node reaches ``address`` through (``ip -o route get``), for NCCL/GLOO_SOCKET_IFNAME."""
    try:
        out = subprocess.run(["ip", "-o", "route", "get", address], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    words = out.split()
    return words[words.index("dev") + 1] if "dev" in words else ""


def _recv_exactly(conn, size, chunk):
    got, kept = 0, []
    while got < size:
        data = conn.recv(min(chunk, size - got))
        if not data:
            raise OSError("the peer closed the connection after %d of %d bytes" % (got, size))
        got += len(data)
        if size <= 64:
            kept.append(data)
    return b"".join(kept)


def _median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0


def tcp_exchange(listen, address, port, size, timeout, iters=1):
    """``size`` bytes each way over one TCP connection (the listener receives first, then sends), ``iters`` times:
    size / the slower direction's median time, in GB/s. Returns (figure, seconds)."""
    chunk = 1 << 20
    block = b"\0" * chunk
    deadline = time.time() + timeout
    if listen:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", port))
        server.listen(1)
        server.settimeout(timeout)
        try:
            conn, dummy = server.accept()
        finally:
            server.close()
    else:
        while True:
            try:
                conn = socket.create_connection((address, port), timeout=10)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
    conn.settimeout(timeout)
    times = ([], [])
    try:
        for dummy in range(max(1, iters)):
            for direction in (0, 1):
                receiving = (direction == 0) == listen
                # a one-byte go between the directions, so that each direction is timed alone
                started = time.time()
                if receiving:
                    _recv_exactly(conn, size, chunk)
                    times[direction].append(time.time() - started)
                    conn.sendall(b"k")
                else:
                    sent = 0
                    while sent < size:
                        conn.sendall(block[:min(chunk, size - sent)])
                        sent += min(chunk, size - sent)
                    _recv_exactly(conn, 1, 1)
                    times[direction].append(time.time() - started)
        # the slower direction's median; both sides then report (about) the same figure
        mine = max(_median(times[0]), _median(times[1]))
        conn.sendall(struct.pack("!d", mine))
        other = struct.unpack("!d", _recv_exactly(conn, 8, 8))[0]
    finally:
        conn.close()
    seconds = max(mine, other)
    return size / seconds / GB, seconds


def torch_pair(backend, rank, address, port, size, iters, timeout):
    """A 2-rank all-reduce of ``size`` bytes (float32), ``iters`` timed one by one after a warm-up: bus bandwidth in
    GB/s from the median time (2 ranks: size / time; the median keeps a busy moment of the node out). Returns
    (figure, seconds per all-reduce)."""
    import datetime
    import torch
    import torch.distributed as dist
    device = "cpu"
    if backend == "nccl":
        torch.cuda.set_device(0)
        device = "cuda:0"
    dist.init_process_group(backend, init_method="tcp://%s:%d" % (address, port), rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=timeout))
    try:
        tensor = torch.ones(max(1, size // 4), dtype=torch.float32, device=device)
        dist.all_reduce(tensor)
        if backend == "nccl":
            torch.cuda.synchronize()
        times = []
        for dummy in range(max(1, iters)):
            started = time.time()
            dist.all_reduce(tensor)
            if backend == "nccl":
                torch.cuda.synchronize()
            times.append(time.time() - started)
        seconds = _median(times)
        # the two ranks agree on one figure: the slower one's
        slow = torch.tensor([seconds], dtype=torch.float64, device=device)
        dist.all_reduce(slow, op=dist.ReduceOp.MAX)
        seconds = float(slow.item())
    finally:
        dist.destroy_process_group()
    return tensor.numel() * 4 / seconds / GB, seconds


def pick_method(method):
    if method != "auto":
        return method
    try:
        import torch
    except ImportError:
        return "tcp"
    return "nccl" if torch.cuda.is_available() and torch.cuda.device_count() > 0 else "gloo"


def run_pairs(args):
    schedule = json.loads(args.schedule)
    addresses = json.loads(args.addresses)
    method = pick_method(args.method)
    if args.bytes <= 0:  # nccl-tests' usual large size on GPUs; a size a slow link still moves in seconds on CPUs
        args.bytes = (256 << 20) if method == "nccl" else (8 << 20)
    results = []
    for index, pairs in enumerate(schedule):
        pair = [p for p in pairs if args.me in p]
        if not pair:
            continue
        first, second = pair[0]
        peer = second if args.me == first else first
        listen = args.me == first
        port = args.port + index
        row = {"round": index, "pair": [first, second], "peer": peer, "method": method}
        try:
            if method == "tcp":
                figure, seconds = tcp_exchange(listen, addresses[first], port, args.bytes, args.timeout, args.iters)
            else:
                ifname = route_ifname(addresses[peer])
                if ifname:
                    os.environ["GLOO_SOCKET_IFNAME"] = os.environ["NCCL_SOCKET_IFNAME"] = ifname
                figure, seconds = torch_pair(method, 0 if listen else 1, addresses[first], port, args.bytes,
                                             args.iters, args.timeout)
            row.update(busbw_gbs=round(figure, 4), seconds=round(seconds, 4))
        except Exception as exc:  # pylint: disable=broad-except
            row.update(busbw_gbs=None, error="%s: %s" % (type(exc).__name__, exc))
        results.append(row)
    return {"method": method, "bytes": args.bytes, "pairs": results}


def _local_worker(rank, world, port, size, iters, queue):
    import torch
    import torch.distributed as dist
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=world)
    tensor = torch.ones(max(1, size // 4), dtype=torch.float32, device="cuda:%d" % rank)
    for dummy in range(2):
        dist.all_reduce(tensor)
    torch.cuda.synchronize()
    started = time.time()
    for dummy in range(iters):
        dist.all_reduce(tensor)
    torch.cuda.synchronize()
    seconds = (time.time() - started) / iters
    if rank == 0:
        queue.put(seconds)
    dist.destroy_process_group()


def run_local(args):
    try:
        import torch
        import torch.multiprocessing as mp
    except ImportError:
        return {"error": "no torch in %s" % sys.executable}
    world = torch.cuda.device_count()
    if world < 2:
        return {"gpus": world, "busbw_gbs": None, "note": "fewer than 2 GPUs: no all-reduce inside the node"}
    if args.bytes <= 0:
        args.bytes = 256 << 20
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_local_worker, args=(rank, world, args.port, args.bytes, args.iters, queue))
             for rank in range(world)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(args.timeout)
    if any(proc.exitcode != 0 for proc in procs) or queue.empty():
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        return {"gpus": world, "busbw_gbs": None, "error": "the NCCL all-reduce failed (exit codes %s)"
                % [proc.exitcode for proc in procs]}
    seconds = queue.get()
    size = max(1, args.bytes // 4) * 4
    busbw = size / seconds / GB * 2.0 * (world - 1) / world
    return {"gpus": world, "bytes": size, "seconds": round(seconds, 6), "busbw_gbs": round(busbw, 3),
            "algbw_gbs": round(size / seconds / GB, 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("what", choices=["local", "pairs"])
    parser.add_argument("--me", default="")
    parser.add_argument("--schedule", default="[]")
    parser.add_argument("--addresses", default="{}")
    parser.add_argument("--method", default="auto", choices=["auto", "tcp", "gloo", "nccl"])
    parser.add_argument("--port", type=int, default=29450)
    parser.add_argument("--bytes", type=int, default=0)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    result = run_local(args) if args.what == "local" else run_pairs(args)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
