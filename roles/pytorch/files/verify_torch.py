# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check torch on this node; print one JSON line; exit 1 naming what failed.

- torch imports and is the expected build (e.g. 2.13.0+cpu)
- torch.distributed has gloo (and nccl with --gpu)
- a gloo process group of --world-size processes on this node all-reduces correctly
- with --gpu: torch.cuda.device_count() equals the GPUs nvidia-smi lists, and an nccl group works
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import warnings

# torch warns when numpy is absent; numpy is optional here
warnings.filterwarnings("ignore", message=".*NumPy.*")
os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker(rank, world, port, backend):
    import torch
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        tensor = torch.ones(4) * (rank + 1)
        if backend == "nccl":
            torch.cuda.set_device(rank)
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        want = world * (world + 1) / 2.0
        if float(tensor[0].item()) != want:
            raise RuntimeError("%s all_reduce gave %s, expected %s" % (backend, tensor[0].item(), want))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def process_group(world, backend):
    import torch.multiprocessing as mp

    mp.spawn(worker, args=(world, free_port(), backend), nprocs=world, join=True)


def smi_gpus():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        return None
    return len([line for line in proc.stdout.splitlines() if line.startswith("GPU ")])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--expect-version", default="")
    parser.add_argument("--gpu", action="store_true")
    args = parser.parse_args()
    report = {"ok": False, "python": sys.executable}
    try:
        import torch
        import torch.distributed as dist

        report.update(torch=torch.__version__, cuda=torch.version.cuda, gloo=dist.is_gloo_available(),
                      nccl=dist.is_nccl_available(), cuda_available=torch.cuda.is_available(),
                      cuda_devices=torch.cuda.device_count())
        problems = []
        if args.expect_version and torch.__version__ != args.expect_version:
            problems.append("torch is %s, expected %s" % (torch.__version__, args.expect_version))
        if not report["gloo"]:
            problems.append("torch.distributed has no gloo backend")
        if args.gpu:
            report["nvidia_smi_gpus"] = smi_gpus()
            if not report["nccl"]:
                problems.append("torch.distributed has no nccl backend")
            if report["nvidia_smi_gpus"] is None:
                problems.append("nvidia-smi is missing or fails")
            elif report["cuda_devices"] != report["nvidia_smi_gpus"]:
                problems.append("torch sees %d CUDA device(s), nvidia-smi lists %d" % (
                    report["cuda_devices"], report["nvidia_smi_gpus"]))
        if problems:
            report["error"] = "; ".join(problems)
            print(json.dumps(report))
            return 1
        process_group(args.world_size, "gloo")
        report["gloo_world_size"] = args.world_size
        if args.gpu and report["cuda_devices"] > 0:
            world = min(args.world_size, report["cuda_devices"])
            process_group(world, "nccl")
            report["nccl_world_size"] = world
        report["ok"] = True
        print(json.dumps(report))
        return 0
    except Exception as exc:  # report any failure as one line for the role's message
        report["error"] = "%s: %s" % (type(exc).__name__, exc)
        print(json.dumps(report))
        return 1


if __name__ == "__main__":
    sys.exit(main())
