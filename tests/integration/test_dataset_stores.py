"""The dataset role (playbooks/data.yml) from gs:// and az:// - Cloud Storage's emulator (gcp-storage-emulator) and
Azure's (Azurite) on the cluster network's gateway, as test_dataset.py does with moto for s3:// - onto 2 local
nodes: the whole set and sharded by rank, each object verified on the node (by the sha256 it was uploaded with, or
the service's own checksum: md5Hash/crc32c, Content-MD5, per-range MD5 for a blob written in blocks); a re-run
transfers nothing; check mode lists what would move; a corrupt object is never placed; bad input fails naming the
cause before anything is copied; the account key never appears in -vvv output. One cluster (the worker's shared one)
and both emulators for the module, the stores as a parameter."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest

from conftest import podman, run_playbook, write_inventory
from store_servers import AZ_ACCOUNT, AzuriteServer, GCSServer
from test_dataset import node_files, results, ssh

MiB = 1024 * 1024
BUCKET = "datasets"
PREFIX = "corpus/v1"
STORES = ["gs", "az"]


@pytest.fixture(scope="module")
def env(shared_cluster, tmp_path_factory):
    """2 local nodes (the worker's shared cluster, tests/conftest.py SharedCluster: no staged data; the storage
    client a module before installed is kept); both emulators on its gateway, each holding
    <scheme>://datasets/corpus/v1."""
    cluster = shared_cluster.take(2)["name"]
    tmp = tmp_path_factory.mktemp("dataset-stores")
    with GCSServer(cluster) as gcs, AzuriteServer(cluster) as az:
        servers = {"gs": gcs, "az": az}
        expected = dict((scheme, _fill(scheme, server)) for scheme, server in servers.items())
        hosts = dict((name, podman("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                                   name).stdout.strip()) for name in ("%s-0" % cluster, "%s-1" % cluster))
        yield dict(cluster=cluster, inv=write_inventory(tmp, cluster, size=2), servers=servers, expected=expected,
                   hosts=hosts, tmp=tmp)


@pytest.fixture(scope="module", params=STORES)
def scheme(request):
    """The store under test: module-scoped, so that pytest runs every test of one store before the next store's (the
    node's client is re-installed when the schemes in use change: once per store, not once per test)."""
    return request.param


def _put(scheme, handle, key, body, sha=False, blocks=False):
    meta = {"sha256": hashlib.sha256(body).hexdigest()} if sha is True else ({"sha256": sha} if sha else None)
    if scheme == "gs":
        blob = handle.blob(key)
        blob.metadata = meta
        blob.upload_from_string(body)
    elif blocks:  # in 3 MiB blocks and no Content-MD5, as large blobs are written by azcopy and the SDKs
        from azure.storage.blob import BlobBlock
        blob = handle.get_blob_client(key)
        ids = []
        for i in range(0, len(body), 3 * MiB):
            ids.append(BlobBlock(block_id=base64.b64encode(b"%08d" % i).decode()))
            blob.stage_block(ids[-1].id, body[i:i + 3 * MiB])
        blob.commit_block_list(ids, metadata=meta)
    else:
        handle.upload_blob(key, body, metadata=meta, overwrite=True)


def _delete(scheme, handle, key):
    if scheme == "gs":
        handle.blob(key).delete()
    else:
        handle.delete_blob(key)


def _fill(scheme, server):
    """60 objects: 58 small ones (half with a sha256 in their metadata) and two of 9 MiB (on Azure one written in
    blocks, without Content-MD5)."""
    handle = server.client(BUCKET)
    rnd = random.Random(21)
    expected = {}
    for i in range(58):
        body = rnd.randbytes(rnd.randint(1, 32 * 1024))
        rel = "part-%d/shard-%03d.bin" % (i % 5, i)
        _put(scheme, handle, "%s/%s" % (PREFIX, rel), body, sha=bool(i % 2))
        expected[rel] = hashlib.sha256(body).hexdigest()
    for i in range(2):
        body = rnd.randbytes(9 * MiB + 17 * i)
        rel = "big/blob-%d.bin" % i
        _put(scheme, handle, "%s/%s" % (PREFIX, rel), body, blocks=bool(i))
        expected[rel] = hashlib.sha256(body).hexdigest()
    return expected


def stage(env, scheme, *args, extra=None, options=None, json_out=True, check=True):
    ev = dict({"dataset_uri": "%s://%s/%s" % (scheme, BUCKET, PREFIX),
               "gpu_cluster_storage_options": env["servers"][scheme].options() if options is None else options},
              **(extra or {}))
    return run_playbook("playbooks/data.yml", *args, inventory=env["inv"], extra_vars=ev, check=check, timeout=900,
                        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"} if json_out else None)


def test_whole_set_on_every_node_then_nothing_moves(env, scheme):
    dest = "/var/lib/aiinfra/data-%s" % scheme
    first = stage(env, scheme, "-vvv", extra={"dataset_dir": dest}, json_out=False)
    if scheme == "az":
        assert env["servers"]["az"].options()["account_key"] not in first.stdout
    assert first.stdout.count("60 files (") == 2, first.stdout[-3000:]
    for host in env["hosts"]:
        files = node_files(env, host, dest)
        assert files.pop(".aiinfra-manifest.json")
        assert files == env["expected"][scheme], "every object, byte for byte, on %s" % host
        # the client's venv has this store's library, imported by the module on the node
        assert ssh(env, host, "/opt/aiinfra/storage/venv/bin/python -c 'import %s'" % (
            "google.cloud.storage" if scheme == "gs" else "azure.storage.blob, azure.identity")).returncode == 0

    again = stage(env, scheme, extra={"dataset_dir": dest})
    for host, res in results(again).items():
        assert res["changed"] is False and res["transferred"] == [] and res["bytes"] == 0, (host, res)
        assert len(res["present"]) == 60
    assert all(' "changed": 0,' in again.stdout.split('"stats"')[1].split("}")[i] for i in range(2)), \
        "the whole play changes nothing: " + again.stdout.split('"stats"')[1]


def test_sharded_by_rank_and_check_mode_lists_what_would_move(env, scheme):
    dest = "/var/lib/aiinfra/shards-%s" % scheme
    extra = {"dataset_sharded": True, "dataset_dir": dest}
    res = results(stage(env, scheme, extra=extra))
    shards = dict((host, node_files(env, host, dest)) for host in env["hosts"])
    for host, files in shards.items():
        files.pop(".aiinfra-manifest.json")
        assert sorted(files) == sorted(res[host]["transferred"]) and 10 < len(files) < 50, (host, len(files))
    first, second = shards.values()
    assert not set(first) & set(second) and dict(first, **second) == env["expected"][scheme]

    handle = env["servers"][scheme].client(BUCKET)
    for name in ("late-a.bin", "late-b.bin"):
        _put(scheme, handle, "%s/late/%s" % (PREFIX, name), name.encode())
    try:
        planned = results(stage(env, scheme, "--check", extra=extra))
        would = sorted(w["path"] for r in planned.values() for w in r["would_transfer"])
        assert would == ["late/late-a.bin", "late/late-b.bin"]
        assert not any("late/late-a.bin" in node_files(env, h, dest) for h in env["hosts"])
    finally:
        for name in ("late-a.bin", "late-b.bin"):
            _delete(scheme, handle, "%s/late/%s" % (PREFIX, name))


@pytest.mark.parametrize("case", ["corrupt-object", "no-bucket", "rejected"])
def test_bad_input_fails_clearly_and_copies_nothing(env, scheme, case):
    bad_input(env, scheme, case)


def test_an_az_uri_without_its_account_fails_before_anything_is_installed(env):
    bad_input(env, "az", "no-account")


def bad_input(env, scheme, case):
    dest = "/var/lib/aiinfra/bad-%s-%s" % (scheme, case)
    server = env["servers"][scheme]
    options = server.options()
    uri = "%s://%s/%s" % (scheme, BUCKET, PREFIX)
    if case == "corrupt-object":
        handle = server.client(BUCKET)
        _put(scheme, handle, "corrupt/a.bin", b"fine", sha=True)
        _put(scheme, handle, "corrupt/b.bin", b"not what was checksummed",
             sha=hashlib.sha256(b"something else").hexdigest())
        uri = "%s://%s/corrupt" % (scheme, BUCKET)
        words = "skipped corrupt object corrupt/b.bin"
    elif case == "no-bucket":
        uri = "%s://no-such-dss/x" % scheme
        words = "bucket no-such-dss does not exist" if scheme == "gs" else \
            "container no-such-dss does not exist in account %s" % AZ_ACCOUNT
    elif case == "rejected":
        if scheme == "gs":
            options = dict(options, anonymous=False, credentials="{not a key")
            words = "gpu_cluster_storage_options.credentials is not a service account key's JSON"
        else:
            options = dict(options, account_key=base64.b64encode(b"not the key of the account").decode())
            words = "the Azure credentials for account %s were rejected" % AZ_ACCOUNT
    else:
        options = dict(options, account_name="")
        words = "set the storage account in gpu_cluster_storage_options.account_name"
    proc = stage(env, scheme, "-vvv", extra={"dataset_dir": dest, "dataset_uri": uri}, options=options,
                 json_out=False, check=False)
    assert proc.returncode != 0
    text = " ".join(proc.stdout.split())
    assert words in text, proc.stdout[-4000:]
    assert server.options().get("account_key", "-no-key-") not in proc.stdout
    assert "{not a key" not in proc.stdout  # credentials are no_log, even when they are not a key
    for host in env["hosts"]:
        left = node_files(env, host, dest)
        if case == "corrupt-object":
            assert sorted(left) == [".aiinfra-manifest.json", "a.bin"], left
            manifest = ssh(env, host, "cat %s/.aiinfra-manifest.json" % dest).stdout
            assert "corrupt/a.bin" in manifest and "corrupt/b.bin" not in manifest
        else:
            assert left == {}, (host, left)
