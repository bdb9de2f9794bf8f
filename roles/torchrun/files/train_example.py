# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The example job of aiinfra.gpu_cluster: a small but real DDP training.

A student MLP learns to classify points labelled by a fixed random "teacher"
(a linear map plus noise, 8 classes). The data is generated from seeds, so
every rank draws its own shard and a resumed run continues the same stream.
What it learns is measurable: the loss falls from ln(8) ~ 2.08 and the
accuracy on a held-out set climbs from chance (12.5%) towards the teacher's.

It logs JSON lines (one object per line) that the torchrun role parses:
  {"event": "joined", "rank": 3, "world_size": 6, ...}      every rank, once
  {"event": "step", "step": 40, "loss": 0.61, "samples_per_s": 5123.4, ...}
  {"event": "checkpoint", "step": 50, "path": "..."}
  {"event": "eval", "step": 50, "eval_acc": 0.81}
  {"event": "done", "step": 300, "loss": 0.21, "eval_acc": 0.93, ...}
Checkpoints go to --checkpoint-dir every --checkpoint-every steps (global rank 0
writes them: one writer per name); a new run resumes from the newest complete
checkpoint any node holds. The completeness rule (the torchrun role restores only
files that follow it): each file is written under a temporary name and renamed,
then NAME.sha256 (sha256sum's format) is written the same way, last.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import re
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

CKPT_RE = re.compile(r"^ckpt-(\d{8})\.pt$")


def log(event, **fields):
    fields = dict({"event": event, "time": round(time.time(), 3)}, **fields)
    sys.stdout.write(json.dumps(fields, sort_keys=False) + "\n")
    sys.stdout.flush()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--steps", type=int, default=300, help="train until this global step")
    p.add_argument("--batch-size", type=int, default=64, help="samples per rank per step")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--log-every", type=int, default=10, help="log a step line every N steps")
    p.add_argument("--checkpoint-dir", default=os.environ.get("AIINFRA_CHECKPOINT_DIR", "checkpoints"))
    p.add_argument("--checkpoint-every", type=int, default=50, help="checkpoint every K steps (0: only at the end)")
    p.add_argument("--keep-checkpoints", type=int, default=3)
    p.add_argument("--no-resume", action="store_true", help="start from step 0 even if a checkpoint exists")
    p.add_argument("--backend", choices=["auto", "gloo", "nccl"], default="auto")
    p.add_argument("--min-step-time", type=float, default=0.0,
                   help="pace the job: each step takes at least this many seconds (demos, failure drills)")
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "log_every", "features", "hidden", "classes"):
        if getattr(args, name) < 1:
            p.error("--%s must be at least 1" % name.replace("_", "-"))
    return args


def teacher(args):
    gen = torch.Generator().manual_seed(args.seed)
    return torch.randn(args.features, args.classes, generator=gen)


def batch(args, weights, step, rank, size=None):
    """Deterministic data for (step, rank): a resumed run sees the same stream."""
    gen = torch.Generator().manual_seed(args.seed * 1000003 + step * 1009 + rank)
    x = torch.randn(size or args.batch_size, args.features, generator=gen)
    noise = 0.1 * torch.randn(x.shape[0], args.classes, generator=gen)
    return x, (x @ weights + noise).argmax(dim=1)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def complete(path):
    """The completeness rule: NAME.sha256, written last, holds NAME's sha256."""
    try:
        with open(path + ".sha256") as handle:
            words = handle.read(4096).split()
        return bool(words) and words[0].lower() == sha256_of(path)
    except OSError:
        return False


def local_checkpoints(directory):
    """(step, path) of the complete checkpoints in ``directory``, oldest first."""
    found = []
    for path in glob.glob(os.path.join(directory, "ckpt-*.pt")):
        match = CKPT_RE.match(os.path.basename(path))
        if match and complete(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def replace_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_checkpoint(args, step, model, optimizer):
    os.makedirs(args.checkpoint_dir, exist_ok=True)
    path = os.path.join(args.checkpoint_dir, "ckpt-%08d.pt" % step)
    buffer = io.BytesIO()
    torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "config": {k: v for k, v in vars(args).items() if k != "checkpoint_dir"}}, buffer)
    data = buffer.getvalue()
    # the completeness rule: the file under a temporary name, renamed; then its marker, last
    replace_atomically(path, data)
    marker = "%s  %s\n" % (hashlib.sha256(data).hexdigest(), os.path.basename(path))
    replace_atomically(path + ".sha256", marker.encode("ascii"))
    for old in local_checkpoints(args.checkpoint_dir)[:-args.keep_checkpoints]:
        for name in (old[1] + ".sha256", old[1]):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass
    log("checkpoint", step=step, path=os.path.abspath(path))


def resume(args, rank, world, model, optimizer, device):
    """Find the newest checkpoint on any node; its owner broadcasts the file to every rank.

    Plain tensor collectives only (no pickled objects), so it needs nothing beyond torch.
    """
    mine = local_checkpoints(args.checkpoint_dir)
    newest = mine[-1][0] if mine else -1
    # one number per rank, the largest wins: the newest step, on a tie the lowest rank
    key = torch.tensor([(newest + 1) * world + (world - 1 - rank)], dtype=torch.int64, device=device)
    dist.all_reduce(key, op=dist.ReduceOp.MAX)
    step, owner = int(key.item()) // world - 1, world - 1 - int(key.item()) % world
    if step < 0:
        return 0
    size = torch.zeros(1, dtype=torch.int64, device=device)
    if rank == owner:
        with open(mine[-1][1], "rb") as handle:
            data = torch.frombuffer(bytearray(handle.read()), dtype=torch.uint8).to(device)
        size[0] = data.numel()
    dist.broadcast(size, src=owner)
    if rank != owner:
        data = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(data, src=owner)
    state = torch.load(io.BytesIO(bytes(data.cpu().tolist())), map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if rank == 0:
        log("resume", step=state["step"], from_rank=owner)
    return state["step"]


def evaluate(args, weights, model, device):
    x, y = batch(args, weights, step=-1, rank=-1, size=2048)
    with torch.no_grad():
        return (model(x.to(device)).argmax(dim=1).cpu() == y).float().mean().item()


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
        backend=backend, device=str(device), restart=int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
        torch=torch.__version__)

    torch.manual_seed(args.seed)  # same initial weights everywhere (DDP also broadcasts rank 0's)
    weights = teacher(args)
    model = nn.Sequential(nn.Linear(args.features, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    start = 0 if args.no_resume else resume(args, rank, world, model, optimizer, device)
    model.to(device)
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if backend == "nccl" else None)
    if start >= args.steps:
        if local_rank == 0:
            log("done", step=start, world_size=world, already_complete=True)
        dist.destroy_process_group()
        return 0

    last_log, last_time, loss_value = start, time.time(), float("nan")
    for step in range(start + 1, args.steps + 1):
        began = time.time()
        x, y = batch(args, weights, step, rank)
        loss = F.cross_entropy(ddp(x.to(device)), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.log_every == 0 or step == args.steps or step == start + 1:
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            loss_value = mean.item() / world
            now = time.time()
            rate = (step - last_log) * args.batch_size * world / max(now - last_time, 1e-9)
            if local_rank == 0:
                log("step", step=step, loss=round(loss_value, 5), samples_per_s=round(rate, 1), world_size=world)
            last_log, last_time = step, now
        if rank == 0 and ((args.checkpoint_every and step % args.checkpoint_every == 0) or step == args.steps):
            save_checkpoint(args, step, model, optimizer)
            log("eval", step=step, eval_acc=round(evaluate(args, weights, model, device), 4))
        pause = args.min_step_time - (time.time() - began)
        if pause > 0:
            time.sleep(pause)

    eval_acc = evaluate(args, weights, model, device)
    if local_rank == 0:
        log("done", step=args.steps, loss=round(loss_value, 5), eval_acc=round(eval_acc, 4), world_size=world,
            resumed_from=start)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is written and the process group is destroyed: leave without the interpreter's teardown, where
    # torch's gloo threads now and then abort the process ("terminate called without an active exception",
    # SIGABRT, seen once on a rank that had logged "done") and turn a finished run into a failed one.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
