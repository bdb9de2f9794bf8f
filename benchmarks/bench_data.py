#!/usr/bin/env python
"""Staging throughput per object store: the dataset role (playbooks/data.yml -> object_sync) against the floor of
the store's own SDK run by hand on the same node, against the same server (bound to the cluster network's gateway):
s3:// on moto (floor: boto3's transfer manager), gs:// on gcp-storage-emulator (floor: google-cloud-storage's
download_to_filename, 10 threads), az:// on Azurite (floor: azure-storage-blob's download_blob().readinto,
10 threads). BENCH_STORES picks them (default s3,gs,az).

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

from conftest import KEY, destroy_cluster, local_name, podman, run_playbook, write_inventory  # noqa: E402
from s3_server import S3Server  # noqa: E402
from store_servers import AzuriteServer, GCSServer  # noqa: E402

MiB = 1024 * 1024
SMALL = int(os.environ.get("BENCH_SMALL", "96"))
LARGE = int(os.environ.get("BENCH_LARGE", "4"))
BUCKET = "bench"
STORES = [s.strip() for s in os.environ.get("BENCH_STORES", "s3,gs,az").split(",") if s.strip()]

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

# the same for Cloud Storage and Azure Blob: the SDK's plain download of every object, 10 at once, no verification
FLOOR_GS = r"""
import concurrent.futures, json, sys, time
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
opts = json.load(sys.stdin)
client = storage.Client(project="bench", credentials=AnonymousCredentials(),
                        client_options={"api_endpoint": opts["endpoint_url"]})
started = time.monotonic()
blobs = list(client.list_blobs(sys.argv[1], prefix=sys.argv[2]))
with concurrent.futures.ThreadPoolExecutor(10) as pool:
    list(pool.map(lambda ib: ib[1].download_to_filename("%s/%d" % (sys.argv[3], ib[0]), checksum=None),
                  enumerate(blobs)))
seconds = time.monotonic() - started
print(json.dumps({"seconds": seconds, "bytes": sum(b.size for b in blobs), "files": len(blobs)}))
"""

FLOOR_AZ = r"""
import concurrent.futures, json, sys, time
from azure.storage.blob import ContainerClient
opts = json.load(sys.stdin)
client = ContainerClient(opts["endpoint_url"], sys.argv[1],
                         credential={"account_name": opts["account_name"], "account_key": opts["account_key"]})
started = time.monotonic()
blobs = list(client.list_blobs(name_starts_with=sys.argv[2]))

def one(item):
    with open("%s/%d" % (sys.argv[3], item[0]), "wb") as handle:
        client.download_blob(item[1].name).readinto(handle)
with concurrent.futures.ThreadPoolExecutor(10) as pool:
    list(pool.map(one, enumerate(blobs)))
seconds = time.monotonic() - started
print(json.dumps({"seconds": seconds, "bytes": sum(b.size for b in blobs), "files": len(blobs)}))
"""
FLOORS = {"s3": ("boto3 TransferManager", FLOOR), "gs": ("google-cloud-storage download_to_filename", FLOOR_GS),
          "az": ("azure-storage-blob download_blob", FLOOR_AZ)}
SERVERS = {"s3": ("moto S3", S3Server), "gs": ("gcp-storage-emulator", GCSServer), "az": ("Azurite", AzuriteServer)}


class Bucket(object):
    """put(key, body) into the benchmark's bucket of one store, through the store's own SDK."""

    def __init__(self, scheme, server):
        self.scheme = scheme
        if scheme == "s3":
            self.client = server.client()
            self.client.create_bucket(Bucket=BUCKET)
        else:
            self.client = server.client(BUCKET)

    def put(self, key, body):
        if self.scheme == "s3":
            self.client.put_object(Bucket=BUCKET, Key=key, Body=body)
        elif self.scheme == "gs":
            self.client.blob(key).upload_from_string(body)
        else:
            self.client.upload_blob(key, body, overwrite=True)

    def upload_file(self, path, key):
        if self.scheme == "s3":
            self.client.upload_file(path, BUCKET, key)
        else:
            with open(path, "rb") as handle:
                self.put(key, handle.read())


def ssh(host, command, stdin=None):
    proc = subprocess.run(["ssh", "-i", KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
                           "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "gpuadmin@" + host, command],
                          input=stdin, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise RuntimeError("ssh %s failed: %s" % (command, proc.stderr[-2000:]))
    return proc.stdout


def fill(bucket, tmp):
    bucket.put("warmup/one", b"1")
    total = 0
    for i in range(SMALL):
        body = os.urandom(MiB)
        bucket.put("set/small-%04d" % i, body)
        total += len(body)
    for i in range(LARGE):
        path = os.path.join(tmp, "large")
        with open(path, "wb") as handle:
            handle.write(os.urandom(32 * MiB))
        bucket.upload_file(path, "set/large-%02d" % i)
        total += 32 * MiB
        os.unlink(path)
    return total


def stage(inv, scheme, server, dest):
    started = time.monotonic()
    proc = run_playbook("playbooks/data.yml", inventory=inv, timeout=1800,
                        extra_vars={"dataset_uri": "%s://%s/set" % (scheme, BUCKET), "dataset_dir": dest,
                                    "gpu_cluster_storage_options": server.options()},
                        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    wall = time.monotonic() - started
    doc = json.loads(proc.stdout[proc.stdout.find("{\n"):])
    # the role's object_sync task (data.yml's include_role of the role has the same name)
    res = [t for p in doc["plays"] for t in p["tasks"] if t["task"]["name"].endswith("Stage the dataset")
           and "transferred" in list(t["hosts"].values())[0]][0]
    return wall, list(res["hosts"].values())[0]


def measure(inv, host, scheme, server, tmp):
    total = fill(Bucket(scheme, server), tmp)
    # install the storage client once (not part of what is measured)
    run_playbook("playbooks/data.yml", inventory=inv, extra_vars={
        "dataset_uri": "%s://%s/warmup" % (scheme, BUCKET), "dataset_dir": "/var/tmp/warmup",
        "gpu_cluster_storage_options": server.options()})
    ssh(host, "sudo mkdir -p /var/tmp/floor && sudo chmod 1777 /var/tmp/floor")
    floor = json.loads(ssh(host, "/opt/aiinfra/storage/venv/bin/python -c '%s' %s set/ /var/tmp/floor"
                           % (FLOORS[scheme][1].replace("'", "'\"'\"'"), BUCKET), stdin=json.dumps(server.options())))
    wall, module = stage(inv, scheme, server, "/var/tmp/role")
    assert module["bytes"] == floor["bytes"] == total and len(module["transferred"]) == floor["files"]
    ssh(host, "sudo rm -rf /var/tmp/floor /var/tmp/role /var/tmp/warmup")
    return total, floor, wall, module


def main():
    cluster = local_name("dst-bench")
    tmp = tempfile.mkdtemp(prefix="bench-data-")
    measured = {}
    try:
        inv = write_inventory(__import__("pathlib").Path(tmp), cluster, size=1)
        run_playbook("playbooks/provision.yml", inventory=inv)
        host = podman("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                      cluster + "-0").stdout.strip()
        for scheme in STORES:
            with SERVERS[scheme][1](cluster) as server:
                measured[scheme] = measure(inv, host, scheme, server, tmp)
    finally:
        destroy_cluster(cluster)
    for scheme, (total, floor, wall, module) in measured.items():
        mb = total / 1e6
        rows = [("%s by hand (floor)" % FLOORS[scheme][0], floor["seconds"]),
                ("object_sync on the node (list, transfer, verify, rename)", module["seconds"]),
                ("ansible-playbook data.yml (whole run)", wall)]
        print("\n%s:// staging %d files, %.1f MB (%d x 1 MiB, %d x 32 MiB) to 1 local node from %s"
              % (scheme, floor["files"], mb, SMALL, LARGE, SERVERS[scheme][0]))
        print("%-58s %9s %9s %12s" % ("", "seconds", "MB/s", "vs floor"))
        for name, seconds in rows:
            print("%-58s %9.2f %9.1f %11.2fx" % (name, seconds, mb / seconds, floor["seconds"] / seconds))
        print("%s ratio role/floor (MB/s): module %.2f, whole playbook %.2f"
              % (scheme, floor["seconds"] / module["seconds"], floor["seconds"] / wall))


if __name__ == "__main__":
    main()
