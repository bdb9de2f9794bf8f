#!/usr/bin/env python
"""Staging throughput: the dataset role (playbooks/data.yml -> object_sync) against the floor of boto3's transfer
manager run by hand on the same node, against the same moto S3 server (bound to the cluster network's gateway).

The data set: BENCH_SMALL files of 1 MiB and BENCH_LARGE files of 32 MiB (multipart), default 96 + 4 (224 MiB).
The floor is a script run with the node's storage client interpreter: one s3transfer TransferManager
(max_request_concurrency 10, 8 MiB parts), every object submitted at once, timed inside the script from the
listing to the last byte written; no verification, no manifest, no temporary names. The role is timed twice:
the module's own seconds (listing, transfers, sha256/ETag verification, renames, manifest) and the whole
ansible-playbook run (SSH, the client check, Ansible's own overhead). Printed: MB/s of each and the ratios
role / floor (1.0 = as fast as the floor). One node, so the figure is not a share of the controller's cores.
Prints; does not assert. Needs: make setup, podman. Removes its cluster at the end, pass or fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from conftest import KEY, destroy_cluster, podman, run_playbook, unique_name, write_inventory  # noqa: E402
from s3_server import S3Server  # noqa: E402

MiB = 1024 * 1024
SMALL = int(os.environ.get("BENCH_SMALL", "96"))
LARGE = int(os.environ.get("BENCH_LARGE", "4"))
BUCKET = "bench"

FLOOR = r"""
import json, sys, time
import boto3, botocore.config
from s3transfer.manager import TransferConfig, TransferManager
opts = json.load(sys.stdin)
client = boto3.client("s3", endpoint_url=opts["endpoint_url"], region_name=opts["region"],
                      aws_access_key_id=opts["access_key"], aws_secret_access_key=opts["secret_key"],
                      config=botocore.config.Config(max_pool_connections=20, s3={"addressing_style": "path"}))
started = time.monotonic()
keys = [(o["Key"], o["Size"]) for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=sys.argv[1], Prefix=sys.argv[2]) for o in page.get("Contents", [])]
with TransferManager(client, TransferConfig(max_request_concurrency=10, multipart_chunksize=8 * 2**20,
                                            multipart_threshold=8 * 2**20)) as manager:
    futures = [manager.download(sys.argv[1], key, "%s/%d" % (sys.argv[3], i)) for i, (key, _size) in enumerate(keys)]
    for future in futures:
        future.result()
seconds = time.monotonic() - started
print(json.dumps({"seconds": seconds, "bytes": sum(s for _k, s in keys), "files": len(keys)}))
"""


def ssh(host, command, stdin=None):
    proc = subprocess.run(["ssh", "-i", KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
                           "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "gpuadmin@" + host, command],
                          input=stdin, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise RuntimeError("ssh %s failed: %s" % (command, proc.stderr[-2000:]))
    return proc.stdout


def fill(client, tmp):
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="warmup/one", Body=b"1")
    total = 0
    for i in range(SMALL):
        body = os.urandom(MiB)
        client.put_object(Bucket=BUCKET, Key="set/small-%04d" % i, Body=body)
        total += len(body)
    for i in range(LARGE):
        path = os.path.join(tmp, "large")
        with open(path, "wb") as handle:
            handle.write(os.urandom(32 * MiB))
        client.upload_file(path, BUCKET, "set/large-%02d" % i)
        total += 32 * MiB
        os.unlink(path)
    return total


def stage(inv, s3, dest):
    started = time.monotonic()
    proc = run_playbook("playbooks/data.yml", inventory=inv, timeout=1800,
                        extra_vars={"dataset_uri": "s3://%s/set" % BUCKET, "dataset_dir": dest,
                                    "gpu_cluster_storage_options": s3.options()},
                        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    wall = time.monotonic() - started
    doc = json.loads(proc.stdout[proc.stdout.find("{\n"):])
    res = [t for p in doc["plays"] for t in p["tasks"] if t["task"]["name"].endswith("Stage the dataset")][0]
    return wall, list(res["hosts"].values())[0]


def main():
    cluster = unique_name("dst-bench")
    tmp = tempfile.mkdtemp(prefix="bench-data-")
    try:
        inv = write_inventory(__import__("pathlib").Path(tmp), cluster, size=1)
        run_playbook("playbooks/provision.yml", inventory=inv)
        host = podman("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                      cluster + "-0").stdout.strip()
        with S3Server(cluster) as s3:
            total = fill(s3.client(), tmp)
            # install the storage client once (not part of what is measured)
            run_playbook("playbooks/data.yml", inventory=inv, extra_vars={
                "dataset_uri": "s3://%s/warmup" % BUCKET, "dataset_dir": "/var/tmp/warmup",
                "gpu_cluster_storage_options": s3.options()})
            ssh(host, "sudo mkdir -p /var/tmp/floor && sudo chmod 1777 /var/tmp/floor")
            floor = json.loads(ssh(host, "/opt/aiinfra/storage/venv/bin/python -c '%s' %s set/ /var/tmp/floor"
                                   % (FLOOR.replace("'", "'\"'\"'"), BUCKET), stdin=json.dumps(s3.options())))
            wall, module = stage(inv, s3, "/var/tmp/role")
            assert module["bytes"] == floor["bytes"] == total and len(module["transferred"]) == floor["files"]
            ssh(host, "sudo rm -rf /var/tmp/floor /var/tmp/role /var/tmp/warmup")
    finally:
        destroy_cluster(cluster)
    mb = total / 1e6
    rows = [("boto3 TransferManager by hand (floor)", floor["seconds"]),
            ("object_sync on the node (list, transfer, verify, rename)", module["seconds"]),
            ("ansible-playbook data.yml (whole run)", wall)]
    print("staging %d files, %.1f MB (%d x 1 MiB, %d x 32 MiB multipart) to 1 local node from moto S3"
          % (floor["files"], mb, SMALL, LARGE))
    print("%-58s %9s %9s %12s" % ("", "seconds", "MB/s", "vs floor"))
    for name, seconds in rows:
        print("%-58s %9.2f %9.1f %11.2fx" % (name, seconds, mb / seconds, floor["seconds"] / seconds))
    print("ratio role/floor (MB/s): module %.2f, whole playbook %.2f"
          % (floor["seconds"] / module["seconds"], floor["seconds"] / wall))


if __name__ == "__main__":
    main()
