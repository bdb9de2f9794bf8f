# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Batch prediction over every rank of the cluster (the torchrun role's second example job).

The input set is split over all ranks (every rank takes every world_size-th record of the ordered
input), each rank predicts its share and writes ``predictions-rank-NNNNN.jsonl`` into the output
directory, and global rank 0 gathers every rank's predictions into ``predictions.jsonl`` (ordered by
record id) and ``predictions-summary.json``. The role brings each node's output directory back into
the run directory on the controller (or to object storage with torchrun_output_uri).

Input: ``--input DIR`` (default: $AIINFRA_DATA_DIR, what the dataset role staged) holding ``*.jsonl``
files of ``{"id": ..., "features": [f1, f2, ...]}``; with no input directory, ``--samples N`` records
are generated (the same distribution the training example learns). With ``--input-sharded`` each node
already holds only its own part (dataset_sharded: true), and the node's ranks split that part.

Model: ``--model PATH`` (a checkpoint file of the training example, or a directory of them: the
newest ``ckpt-*.pt`` is taken). The rank that has it sends it to the others, so one copy on any node
is enough. Without one the weights are random (seeded): the job still shows the data path.

One JSON line per event on stdout (what the role's report reads):
  {"event": "joined", "rank": 3, "world_size": 6, ...}
  {"event": "model", "source": "...", "step": 300}
  {"event": "predicted", "rank": 3, "samples": 1000, "seconds": 0.4, "samples_per_s": 2500.0}
  {"event": "done", "samples": 6000, "seconds": 0.5, "samples_per_s": 12000.0, "merged": "..."}
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
from torch import nn

CKPT_GLOB = "ckpt-*.pt"


def log(event, **fields):
    fields = dict({"event": event, "time": round(time.time(), 3)}, **fields)
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--input", default=os.environ.get("AIINFRA_DATA_DIR", ""),
                   help="directory of *.jsonl input files (default: $AIINFRA_DATA_DIR)")
    p.add_argument("--input-sharded", action="store_true",
                   help="each node holds only its own part of the input: split it over the node's ranks")
    p.add_argument("--samples", type=int, default=20000, help="records to generate when there is no input")
    p.add_argument("--output-dir", default=os.environ.get("AIINFRA_OUTPUT_DIR") or "predictions")
    p.add_argument("--model", default="", help="a training checkpoint, or a directory of ckpt-*.pt (newest wins)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--no-merge", action="store_true", help="only the per-rank files (for very large outputs)")
    p.add_argument("--backend", choices=["auto", "gloo", "nccl"], default="auto")
    args = p.parse_args(argv)
    for name in ("samples", "batch_size", "features", "hidden", "classes"):
        if getattr(args, name) < 1:
            p.error("--%s must be at least 1" % name.replace("_", "-"))
    if args.input and not os.path.isdir(args.input):
        p.error("--input %s is not a directory on %s" % (args.input, socket.gethostname()))
    return args


def complete(path):
    """The training example's completeness rule: NAME.sha256, written last, holds NAME's sha256."""
    try:
        with open(path + ".sha256") as handle:
            words = handle.read(4096).split()
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return bool(words) and words[0].lower() == digest.hexdigest()
    except OSError:
        return False


def model_file(path):
    """The checkpoint ``path`` names: the file itself, or the newest complete ckpt-*.pt in a directory; else None."""
    if not path:
        return None
    if os.path.isfile(path):
        return path
    found = sorted(p for p in glob.glob(os.path.join(path, CKPT_GLOB)) if complete(p))
    return found[-1] if found else None


def as_tensor(payload):
    return torch.frombuffer(bytearray(payload), dtype=torch.uint8) if payload else torch.empty(0, dtype=torch.uint8)


def as_bytes(tensor):
    return bytes(tensor.tolist())


def broadcast_bytes(payload, src, rank, group=None):
    """``payload`` (bytes, on rank ``src``) on every rank: plain CPU tensor collectives (no numpy needed)."""
    size = torch.tensor([len(payload) if rank == src else 0], dtype=torch.int64)
    dist.broadcast(size, src=src, group=group)
    data = as_tensor(payload) if rank == src else torch.empty(int(size.item()), dtype=torch.uint8)
    dist.broadcast(data, src=src, group=group)
    return as_bytes(data)


def gather_bytes(payload, world, group=None):
    """Every rank's ``payload`` (bytes), in rank order, on every rank (padded to the longest, then cut)."""
    sizes = [torch.zeros(1, dtype=torch.int64) for dummy in range(world)]
    dist.all_gather(sizes, torch.tensor([len(payload)], dtype=torch.int64), group=group)
    longest = max(int(s.item()) for s in sizes)
    mine = torch.zeros(longest, dtype=torch.uint8)
    mine[:len(payload)] = as_tensor(payload)
    parts = [torch.empty(longest, dtype=torch.uint8) for dummy in range(world)]
    dist.all_gather(parts, mine, group=group)
    return [as_bytes(part[:int(size.item())]) for part, size in zip(parts, sizes)]


def share_model(args, rank, world, group=None):
    """The checkpoint's state, from the lowest rank that has the file, sent to every rank (None: no model)."""
    mine = model_file(args.model)
    flags = torch.tensor([world if mine is None else rank], dtype=torch.int64)
    dist.all_reduce(flags, op=dist.ReduceOp.MIN, group=group)
    owner = int(flags.item())
    if owner == world:
        return None
    payload = b""
    if rank == owner:
        with open(mine, "rb") as handle:
            payload = handle.read()
    state = torch.load(io.BytesIO(broadcast_bytes(payload, owner, rank, group)), map_location="cpu", weights_only=True)
    state["source"] = "rank %d: %s" % (owner, mine if rank == owner else args.model)
    return state


def build_model(args, state):
    config = dict(vars(args), **((state or {}).get("config") or {}))
    model = nn.Sequential(nn.Linear(config["features"], config["hidden"]), nn.ReLU(),
                          nn.Linear(config["hidden"], config["classes"]))
    if state:
        model.load_state_dict(state["model"])
    return model.eval(), config["features"]


def generated(args, features, index):
    """Record ``index`` of the generated input (deterministic: any rank can make any record)."""
    gen = torch.Generator().manual_seed(args.seed * 7919 + index)
    return {"id": index, "features": torch.randn(features, generator=gen).tolist()}


def my_records(args, features, rank, world):
    """This rank's share of the input, in input order: every world-th record, starting at its rank."""
    if not args.input:
        for index in range(rank, args.samples, world):
            yield generated(args, features, index)
        return
    if args.input_sharded:
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    index = 0
    for path in sorted(glob.glob(os.path.join(args.input, "**", "*.jsonl"), recursive=True)):
        with open(path) as handle:
            for line in handle:
                if not line.strip():
                    continue
                if index % world == rank:
                    record = json.loads(line)
                    if len(record.get("features") or []) != features:
                        raise SystemExit("%s: record %r has %d features, the model takes %d"
                                         % (path, record.get("id"), len(record.get("features") or []), features))
                    yield record
                index += 1


def batches(records, size):
    chunk = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict(model, records, batch_size, device, out):
    """Predict ``records`` in batches, one JSON line each into ``out``; returns how many."""
    count = 0
    with torch.no_grad():
        for chunk in batches(records, batch_size):
            x = torch.tensor([r["features"] for r in chunk], dtype=torch.float32, device=device)
            probs = torch.softmax(model(x), dim=1)
            score, label = probs.max(dim=1)
            for record, c, s in zip(chunk, label.tolist(), score.tolist()):
                row = {"id": record["id"], "class": c, "score": round(s, 5)}
                out.write(json.dumps(row) + "\n")
                count += 1
    return count


def main(argv=None):
    args = parse_args(argv)
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
    log("joined", rank=rank, local_rank=local_rank, world_size=world, host=socket.gethostname(),
        backend=backend, device=str(device), torch=torch.__version__)

    torch.manual_seed(args.seed)
    # the collectives on CPU tensors go over gloo, also when the job's backend is NCCL
    cpu = dist.new_group(backend="gloo") if backend == "nccl" else None
    state = share_model(args, rank, world, cpu)
    model, features = build_model(args, state)
    model.to(device)
    if rank == 0:
        log("model", source=state["source"] if state else "random weights (no --model)",
            step=state.get("step") if state else None)

    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, "predictions-rank-%05d.jsonl" % rank)
    began = time.time()
    with open(path + ".tmp", "w") as out:
        count = predict(model, my_records(args, features, rank, world), args.batch_size, device, out)
    os.replace(path + ".tmp", path)
    took = time.time() - began
    log("predicted", rank=rank, samples=count, seconds=round(took, 3),
        samples_per_s=round(count / max(took, 1e-9), 1), path=os.path.abspath(path))

    # totals: samples over every rank, and the slowest rank's time (the job's wall time for the work)
    counts = torch.tensor([float(count)], dtype=torch.float64)
    dist.all_reduce(counts, group=cpu)
    slowest = torch.tensor([took], dtype=torch.float64)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX, group=cpu)
    merged = None
    if not args.no_merge:
        # every rank's lines to every rank (all_gather: gloo and NCCL alike); rank 0 writes the merged file
        with open(path, "rb") as handle:
            parts = gather_bytes(handle.read(), world, cpu)
        if rank == 0:
            rows = [json.loads(line) for part in parts for line in part.decode().splitlines() if line]
            merged = os.path.join(args.output_dir, "predictions.jsonl")
            with open(merged + ".tmp", "w") as out:
                for row in sorted(rows, key=lambda r: (str(type(r["id"])), r["id"])):
                    out.write(json.dumps(row) + "\n")
            os.replace(merged + ".tmp", merged)
    samples, seconds = int(counts.item()), float(slowest.item())
    if rank == 0:
        summary = {"samples": samples, "seconds": round(seconds, 3), "world_size": world,
                   "samples_per_s": round(samples / max(seconds, 1e-9), 1), "merged": merged,
                   "model": state["source"] if state else None}
        with open(os.path.join(args.output_dir, "predictions-summary.json"), "w") as out:
            json.dump(summary, out, indent=2)
        log("done", **summary)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
