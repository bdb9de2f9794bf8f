"""The dataset role (playbooks/data.yml) against a moto S3 server the nodes reach over their cluster network:
200 objects (three of them multipart uploads) staged onto 2 local nodes, whole and sharded by rank, checksums
verified on the nodes; a re-run transfers nothing (changed false); check mode lists what would move; bad input
fails with a clear message before anything is copied, and nothing corrupt is left under a final name; the
storage secret never appears in ansible-playbook's -vvv output. One cluster (the worker's shared one) and one S3
server for the module."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess

import pytest

from conftest import KEY, podman, run_playbook, write_inventory
from s3_server import S3Server

MiB = 1024 * 1024
SECRET = "dst-Secret-Do-Not-Print-%s" % os.urandom(6).hex()
BUCKET = "datasets"
PREFIX = "corpus/v1"
STAGE = "aiinfra.gpu_cluster.dataset : Stage the dataset"


@pytest.fixture(scope="module")
def env(shared_cluster, tmp_path_factory):
    """2 local nodes (the worker's shared cluster, tests/conftest.py SharedCluster: no staged data; the storage
    client a module before installed is kept), a moto server on its gateway holding s3://datasets/corpus/v1 (200
    objects), the inventory."""
    cluster = shared_cluster.take(2)["name"]
    tmp = tmp_path_factory.mktemp("dataset")
    with S3Server(cluster, secret=SECRET) as s3:
        inv = write_inventory(tmp, cluster, size=2, extra={"gpu_cluster_storage_options": s3.options()})
        expected = _fill(s3.client(), tmp)
        hosts = dict((name, podman("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                                   name).stdout.strip()) for name in ("%s-0" % cluster, "%s-1" % cluster))
        yield dict(cluster=cluster, inv=inv, s3=s3, expected=expected, hosts=hosts, tmp=tmp)


def _fill(client, tmp):
    """200 objects: 197 small put_object ones (half with a sha256 in their metadata) and 3 multipart uploads
    through boto3's transfer manager (8 MiB parts, no sha256: verified by their recomputed ETag)."""
    client.create_bucket(Bucket=BUCKET)
    rnd = random.Random(12)
    expected = {}
    for i in range(197):
        body = rnd.randbytes(rnd.randint(1, 48 * 1024))
        rel = "part-%03d/shard-%04d.bin" % (i % 7, i)
        meta = {"sha256": hashlib.sha256(body).hexdigest()} if i % 2 else {}
        client.put_object(Bucket=BUCKET, Key="%s/%s" % (PREFIX, rel), Body=body, Metadata=meta)
        expected[rel] = hashlib.sha256(body).hexdigest()
    for i, size in enumerate((9 * MiB + 17, 12 * MiB, 17 * MiB + 5)):
        path = tmp / ("big%d" % i)
        path.write_bytes(rnd.randbytes(size))
        rel = "big/blob-%d.bin" % i
        client.upload_file(str(path), BUCKET, "%s/%s" % (PREFIX, rel))
        assert "-" in client.head_object(Bucket=BUCKET, Key="%s/%s" % (PREFIX, rel))["ETag"], "a multipart upload"
        expected[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        path.unlink()
    return expected


def ssh(env, host, command):
    return subprocess.run(
        ["ssh", "-i", KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "gpuadmin@" + env["hosts"][host], command],
        capture_output=True, text=True, timeout=120, check=False)


def node_files(env, host, directory):
    """{relative path: sha256} of the files under directory on the node (the manifest left out)."""
    proc = ssh(env, host, "cd %s 2>/dev/null && find . -type f -print0 | xargs -0 -r sha256sum" % directory)
    out = {}
    for line in proc.stdout.splitlines():
        digest, path = line.split(None, 1)
        out[path[2:]] = digest
    return out


def stage(env, *args, extra=None, json_out=True, check=True):
    ev = dict({"dataset_uri": "s3://%s/%s" % (BUCKET, PREFIX)}, **(extra or {}))
    return run_playbook("playbooks/data.yml", *args, inventory=env["inv"], extra_vars=ev, check=check, timeout=600,
                        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"} if json_out else None)


def results(proc, task=STAGE):
    """{host: result} of one task from the json callback's output."""
    doc = json.loads(proc.stdout[proc.stdout.find("{\n"):])
    for play in doc["plays"]:
        for item in play["tasks"]:
            if item["task"]["name"] == task:
                return item["hosts"]
    raise AssertionError("no task %r in the output" % task)


def test_whole_set_on_every_node_then_nothing_moves(env):
    # -vvv: everything Ansible shows about the run, which must not hold the secret
    first = stage(env, "-vvv", json_out=False)
    assert SECRET not in first.stdout
    assert first.stdout.count("200 files (") == 2, first.stdout[-3000:]
    for host in env["hosts"]:
        files = node_files(env, host, "/var/lib/aiinfra/data")
        assert files.pop(".aiinfra-manifest.json")
        assert files == env["expected"], "every object, byte for byte, on %s" % host

    again = stage(env)
    for host, res in results(again).items():
        assert res["changed"] is False and res["transferred"] == [] and res["bytes"] == 0, (host, res)
        assert len(res["present"]) == 200
    assert all(' "changed": 0,' in again.stdout.split('"stats"')[1].split("}")[i] for i in range(2)), \
        "the whole play changes nothing: " + again.stdout.split('"stats"')[1]


def test_sharded_by_rank_and_check_mode_lists_what_would_move(env):
    extra = {"dataset_sharded": True, "dataset_dir": "/var/lib/aiinfra/shards"}
    res = results(stage(env, extra=extra))
    shards = dict((host, node_files(env, host, "/var/lib/aiinfra/shards")) for host in env["hosts"])
    for host, files in shards.items():
        files.pop(".aiinfra-manifest.json")
        assert sorted(files) == sorted(res[host]["transferred"]) and 40 < len(files) < 160, (host, len(files))
    first, second = shards.values()
    assert not set(first) & set(second) and dict(first, **second) == env["expected"]

    # two new objects: check mode names exactly them (on the node whose shard they are in) and writes nothing
    client = env["s3"].client()
    for name in ("late-a.bin", "late-b.bin"):
        client.put_object(Bucket=BUCKET, Key="%s/late/%s" % (PREFIX, name), Body=name.encode())
    try:
        planned = results(stage(env, "--check", extra=extra))
        would = sorted(w["path"] for r in planned.values() for w in r["would_transfer"])
        assert would == ["late/late-a.bin", "late/late-b.bin"]
        assert all(r["changed"] for r in planned.values() if r["would_transfer"])
        assert not any("late/late-a.bin" in node_files(env, h, "/var/lib/aiinfra/shards") for h in env["hosts"])
    finally:
        for name in ("late-a.bin", "late-b.bin"):
            client.delete_object(Bucket=BUCKET, Key="%s/late/%s" % (PREFIX, name))


@pytest.mark.parametrize("case", ["not-s3", "no-bucket", "no-credentials", "corrupt-object"])
def test_bad_input_fails_clearly_and_copies_nothing(env, case):
    dest = "/var/lib/aiinfra/bad-%s" % case
    extra = {"dataset_dir": dest}
    uri, words = {
        "not-s3": ("ftp://%s/%s" % (BUCKET, PREFIX), "is not an object storage URI: write it as s3://BUCKET/PREFIX"),
        "no-bucket": ("s3://no-such-bucket-dst/x", "bucket no-such-bucket-dst does not exist"),
        "no-credentials": ("s3://%s/%s" % (BUCKET, PREFIX), "no S3 credentials found"),
        "corrupt-object": ("s3://%s/corrupt" % BUCKET, "skipped corrupt object %s/corrupt/b.bin" % BUCKET),
    }[case]
    if case == "no-credentials":
        extra["gpu_cluster_storage_options"] = {"endpoint_url": env["s3"].url, "region": "us-east-1"}
    if case == "corrupt-object":
        client = env["s3"].client()
        client.put_object(Bucket=BUCKET, Key="corrupt/a.bin", Body=b"fine",
                          Metadata={"sha256": hashlib.sha256(b"fine").hexdigest()})
        client.put_object(Bucket=BUCKET, Key="corrupt/b.bin", Body=b"not what was checksummed",
                          Metadata={"sha256": hashlib.sha256(b"something else").hexdigest()})
        words = "skipped corrupt object corrupt/b.bin"
    proc = stage(env, "-vvv", extra=dict(extra, dataset_uri=uri), json_out=False, check=False)
    assert proc.returncode != 0
    text = " ".join(proc.stdout.split())
    assert words in text, proc.stdout[-4000:]
    assert SECRET not in proc.stdout
    for host in env["hosts"]:
        left = node_files(env, host, dest)
        if case == "corrupt-object":
            # the good object arrived; the corrupt one is nowhere, not even as a temporary file, nor in the manifest
            assert sorted(left) == [".aiinfra-manifest.json", "a.bin"], left
            manifest = ssh(env, host, "cat %s/.aiinfra-manifest.json" % dest).stdout
            assert "corrupt/a.bin" in manifest and "corrupt/b.bin" not in manifest
        else:
            assert left == {}, (host, left)
