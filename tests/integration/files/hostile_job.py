"""A hostile training job (a test fixture): what untrusted code launched by the torchrun role tries on its node.

Run by torchrun as the job's user. ``--mode hostile``: tries sudo, reads every other process's environment and
command line and every file it can, looking for the job's secret (HF_TOKEN, given to it through
torchrun_secret_env) and the object store's secret (given to it, hex-encoded, as LOOK_FOR_HEX), tries to write
every file root later reads or runs, then plants links to root's files in its own directories for the next launch
(and the controller's packing) to follow. It prints one ``{"event": "hostile", ...}`` line and exits 0.

``--mode ckpt``: a fixed-name checkpoint (last.ckpt), written by global rank 0 only, by the completeness rule
(temporary name, rename, then last.ckpt.sha256); ``--torn`` instead rewrites it in place, half, and is killed.
Every rank prints ``{"event": "resumed", "step": N}`` for the complete checkpoint its node holds at the start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

SKIP_TOP = ("/proc", "/sys", "/dev")
ROOTS = ("/etc", "/var", "/tmp", "/run", "/home", "/root", "/opt/aiinfra/storage", "/srv", "/usr/local")


def log(event, **fields):
    sys.stdout.write(json.dumps(dict(fields, event=event)) + "\n")
    sys.stdout.flush()


def readable_files():
    for top in ROOTS:
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP_TOP]
            for name in files:
                path = os.path.join(root, name)
                try:
                    if os.path.islink(path) or os.path.getsize(path) > 4 * 1024 * 1024:
                        continue
                    with open(path, "rb") as handle:
                        yield path, handle.read()
                except OSError:
                    continue


def processes():
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            yield int(entry)


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        return exc


def try_write(path):
    """Open for appending (writing nothing): whether the job could have rewritten the file."""
    try:
        with open(path, "ab"):
            return True
    except OSError:
        return False


def try_create(path):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        return False
    os.close(fd)
    os.unlink(path)
    return True


def hostile(args):
    rank = int(os.environ.get("GROUP_RANK", os.environ.get("RANK", "0")))
    run_dir = os.path.dirname(os.environ["AIINFRA_OUTPUT_DIR"])
    run_id = os.environ["AIINFRA_RUN_ID"]
    ckpt = os.environ["AIINFRA_CHECKPOINT_DIR"]
    workdir = os.getcwd()
    job_secret = os.environ.get("HF_TOKEN", "").encode()
    storage_secret = bytes.fromhex(os.environ.get("LOOK_FOR_HEX", ""))
    wanted = dict((name, value) for name, value in (("job", job_secret), ("storage", storage_secret)) if value)
    report = {"node_rank": rank, "uid": os.getuid(), "secret_in_env": bool(job_secret),
              "sudo_rc": subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode}
    found = dict((name, []) for name in wanted)
    for path, data in readable_files():
        for name, value in wanted.items():
            if value in data:
                found[name].append(path)
    foreign, cmdlines, uploader = [], [], "none"
    me = os.getuid()
    for pid in processes():
        cmd = read("/proc/%d/cmdline" % pid)
        if isinstance(cmd, bytes):
            for name, value in wanted.items():
                if value in cmd:
                    cmdlines.append([pid, name])
        try:
            owner = os.stat("/proc/%d" % pid).st_uid
        except OSError:
            continue
        env = read("/proc/%d/environ" % pid)
        if isinstance(cmd, bytes) and b"aiinfra_storage" in cmd:
            uploader = "read" if isinstance(env, bytes) else "denied"
        if owner != me and isinstance(env, bytes):
            foreign.append(pid)
            for name, value in wanted.items():
                if value in env:
                    found[name].append("/proc/%d/environ" % pid)
    report.update(found=found, cmdlines=cmdlines, foreign_environ_readable=foreign, uploader_environ=uploader)
    names = ("launch.sh", "poststop.sh", "meta.json", "exit.json", "job.env", "torchrun.log", "checkpoints.log",
             "uploader/checkpoints.json", "uploader/push-manifest.json")
    targets = [os.path.join(run_dir, n) for n in names]
    targets += ["/run/systemd/transient/aiinfra-torchrun-%s.service" % run_id,
                "/run/systemd/transient/aiinfra-ckpt-%s.service" % run_id,
                "/etc/aiinfra/torchrun/%s.storage.env" % args.job, "/etc/hosts",
                "/opt/aiinfra/storage/aiinfra_storage/__main__.py", "/opt/aiinfra/pytorch/bin/torchrun"]
    report["wrote"] = [p for p in targets if os.path.exists(p) and try_write(p)]
    creatable = [os.path.join(run_dir, n) for n in ("meta.json.tmp", "launch.sh.tmp", "exit.json.tmp", "x")]
    report["created"] = [p for p in creatable if try_create(p)]
    report["checkpoint_dir"] = ckpt
    log("hostile", **report)
    # time for the test to look at every node's processes while the job runs
    time.sleep(args.linger)
    # plant links for root to follow later: the next launch, the packing of outputs, the restore, the uploader
    out = os.environ["AIINFRA_OUTPUT_DIR"]
    with open(os.path.join(out, "real.txt"), "w") as handle:
        handle.write("an honest output of rank %d\n" % rank)
    planted = []

    def plant(target, link):
        try:
            if os.path.lexists(link):
                if os.path.isdir(link) and not os.path.islink(link):
                    os.rename(link, link + ".moved-%d" % os.getpid())
                else:
                    os.unlink(link)
            os.symlink(target, link)
            planted.append(link)
        except OSError as exc:
            planted.append("FAILED %s: %s" % (link, exc))

    plant(args.secret_file, os.path.join(out, "x"))
    plant(args.victim_file, os.path.join(workdir, os.path.basename(args.script_name) + ".tmp"))
    plant(args.victim_file, os.path.join(out, ".aiinfra-x"))
    if rank == 0:
        plant(args.victim_dir, ckpt)  # the whole checkpoint directory
    else:
        plant(args.victim_dir, os.path.join(ckpt, "sub"))  # a subdirectory the restore writes into
        plant(args.victim_file, os.path.join(ckpt, "sub.ckpt"))  # a file the uploader would send
    log("planted", node_rank=rank, links=planted)


def marker_ok(path):
    try:
        with open(path + ".sha256") as handle:
            words = handle.read().split()
        with open(path, "rb") as handle:
            return bool(words) and words[0] == hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return False


def replace(path, data):
    with open(path + ".tmp", "wb") as handle:
        handle.write(data)
    os.replace(path + ".tmp", path)


def checkpoint(args):
    rank = int(os.environ.get("RANK", "0"))
    ckpt = os.environ["AIINFRA_CHECKPOINT_DIR"]
    path = os.path.join(ckpt, "last.ckpt")
    step = None
    if os.path.exists(path) and marker_ok(path):
        with open(path, "rb") as handle:
            step = int(handle.read().split(b"\n")[0].split(b"=")[1])
    log("resumed", rank=rank, step=step)
    if rank == 0:
        data = b"step=%d\n" % args.step + b"x" * 4096
        if args.torn:
            with open(path, "r+b" if os.path.exists(path) else "wb") as handle:
                handle.write(data[:100])  # in place, half: the kind of file a killed job leaves
                handle.truncate()
            log("torn", rank=rank, step=args.step)
            time.sleep(2)
            os.kill(os.getpid(), signal.SIGKILL)
        if args.step:
            replace(path, data)
            replace(path + ".sha256", ("%s  last.ckpt\n" % hashlib.sha256(data).hexdigest()).encode())
            log("checkpoint", rank=rank, step=args.step)
    time.sleep(2)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["hostile", "ckpt"], default="hostile")
    p.add_argument("--job", default="hostile")
    p.add_argument("--linger", type=float, default=8)
    p.add_argument("--secret-file", default="/root/aiinfra-test-secret")
    p.add_argument("--victim-file", default="/etc/aiinfra-test-victim")
    p.add_argument("--victim-dir", default="/etc/aiinfra-test-victim.d")
    p.add_argument("--script-name", default="hostile_job.py")
    p.add_argument("--step", type=int, default=0)
    p.add_argument("--torn", action="store_true")
    args = p.parse_args()
    if args.mode == "hostile":
        hostile(args)
    else:
        checkpoint(args)


if __name__ == "__main__":
    main()
