#!/usr/bin/env python
"""Object stores side by side, in-process on the controller, no nodes: the collection's pull (sync.pull, what the
object_sync module runs - listing, parallel downloads hashed as written, verification, atomic rename, manifest) against
each store's own SDK downloading the same objects plainly (10 threads, no verification), on loopback against moto S3,
gcp-storage-emulator and Azurite. BENCH_SMALL x 1 MiB + BENCH_LARGE x 32 MiB (default 48 + 2), best of two.
Prints MB/s of each and the ratio pull/floor (1.0 = as fast as the floor). benchmarks/bench_data.py is the same
comparison through the real role on a node. Prints; does not assert. Needs: make setup.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from s3_server import S3Server  # noqa: E402
from store_servers import AzuriteServer, GCSServer  # noqa: E402

PACKAGE = "ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._storage."
MiB = 1024 * 1024
SMALL = int(os.environ.get("BENCH_SMALL", "48"))
LARGE = int(os.environ.get("BENCH_LARGE", "2"))
STORES = [s.strip() for s in os.environ.get("BENCH_STORES", "s3,gs,az").split(",") if s.strip()]


def floor_s3(server, dest):
    from s3transfer.manager import TransferConfig, TransferManager
    client = server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="bench", Prefix="set/")["Contents"]]
    config = TransferConfig(max_request_concurrency=10, multipart_chunksize=8 * MiB, multipart_threshold=8 * MiB)
    with TransferManager(client, config) as manager:
        for future in [manager.download("bench", k, "%s/%d" % (dest, i)) for i, k in enumerate(keys)]:
            future.result()


def floor_gs(server, dest):
    blobs = list(server.client().list_blobs("bench", prefix="set/"))
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda ib: ib[1].download_to_filename("%s/%d" % (dest, ib[0]), checksum=None), enumerate(blobs)))


def floor_az(server, dest):
    container = server.client("bench")
    blobs = list(container.list_blobs(name_starts_with="set/"))

    def one(item):
        with open("%s/%d" % (dest, item[0]), "wb") as handle:
            container.download_blob(item[1].name).readinto(handle)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(one, enumerate(blobs)))


def putter(scheme, server):
    if scheme == "s3":
        client = server.client()
        client.create_bucket(Bucket="bench")
        return lambda key, body: client.put_object(Bucket="bench", Key=key, Body=body)
    if scheme == "gs":
        bucket = server.client("bench")
        return lambda key, body: bucket.blob(key).upload_from_string(body)
    container = server.client("bench")
    return lambda key, body: container.upload_blob(key, body, overwrite=True)


def timed(func, *args):
    dest = tempfile.mkdtemp(prefix="bench-stores-")
    try:
        started = time.monotonic()
        out = func(dest, *args)
        return time.monotonic() - started, out
    finally:
        shutil.rmtree(dest)


def main():
    base = importlib.import_module(PACKAGE + "base")
    sync = importlib.import_module(PACKAGE + "sync")
    floors = {"s3": ("boto3 TransferManager", floor_s3, S3Server),
              "gs": ("google-cloud-storage download_to_filename", floor_gs, GCSServer),
              "az": ("azure-storage-blob download_blob().readinto", floor_az, AzuriteServer)}
    print("%d x 1 MiB + %d x 32 MiB per store, in-process on loopback, best of two" % (SMALL, LARGE))
    print("%-6s %-46s %10s %14s %10s" % ("store", "floor", "floor MB/s", "sync.pull MB/s", "pull/floor"))
    for scheme in STORES:
        name, floor, server_class = floors[scheme]
        with server_class(host="127.0.0.1") as server:
            put, total = putter(scheme, server), 0
            for i in range(SMALL):
                put("set/small-%04d" % i, os.urandom(MiB))
                total += MiB
            for i in range(LARGE):
                put("set/large-%02d" % i, os.urandom(32 * MiB))
                total += 32 * MiB

            def pull(dest):
                store, prefix = base.open_store("%s://bench/set" % scheme, server.options())
                try:
                    res = sync.pull(store, prefix, dest, workers=8)
                finally:
                    store.close()
                assert len(res["transferred"]) == SMALL + LARGE and not res["corrupt"] and not res["failed"], res
            floor_s = min(timed(lambda dest: floor(server, dest))[0] for _attempt in range(2))
            pull_s = min(timed(pull)[0] for _attempt in range(2))
        mb = total / 1e6
        print("%-6s %-46s %10.1f %14.1f %10.2f" % (scheme, name, mb / floor_s, mb / pull_s, floor_s / pull_s))


if __name__ == "__main__":
    main()
