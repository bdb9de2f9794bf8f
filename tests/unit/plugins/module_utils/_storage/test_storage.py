"""The storage package (_storage): URI parsing, the pull/push plans, verification (sha256, single-part and
multipart ETags), sharding, atomic placement and the manifest, against moto in-process (mock_aws), plus the
CLI the checkpoint uploader runs."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
import time

import boto3
import pytest
from moto import mock_aws

MiB = 1024 * 1024
PACKAGE = "ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._storage."


class _Module(object):
    """The package's modules looked up when a test runs: another unit test module re-installs Ansible's collection
    loader (tests/unit/roles), after which a module imported at collection time and one the package imports
    lazily (base.open_store -> s3) would hold two different StorageError classes."""

    def __init__(self, name):
        self._name = PACKAGE + name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)


base, sync, cli = _Module("base"), _Module("sync"), _Module("cli")


def ObjectInfo(*args):  # noqa: N802 (the class, looked up now)
    return base.ObjectInfo(*args)


def StorageError(*args):  # noqa: N802
    return base.StorageError(*args)


@pytest.fixture
def s3(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data")
        yield client


def put(client, key, body, sha=True):
    meta = {"sha256": hashlib.sha256(body).hexdigest()} if sha else {}
    client.put_object(Bucket="data", Key=key, Body=body, Metadata=meta)


def garble(st, monkeypatch, bad_key, error=None):
    """Make st.download of bad_key write wrong bytes (and then raise ``error``, when given)."""
    real = st.download

    def download(key, path, size=None):
        info, digests = real(key, path, size)
        if key == bad_key:
            with open(path, "r+b") as handle:
                handle.write(b"X")
            if error:
                raise error
            return info, None  # bytes changed after the store hashed them: verify reads the file
        return info, digests

    monkeypatch.setattr(st, "download", download)


def store(uri="s3://data/ds"):
    return base.open_store(uri, {})


# --- URIs and options ------------------------------------------------------------------------------------

@pytest.mark.parametrize("uri,expected", [
    ("s3://data", ("s3", "data", "")),
    ("s3://data/", ("s3", "data", "")),
    ("s3://data/a/b", ("s3", "data", "a/b/")),
    ("S3://my.bucket-1/a/b/", ("s3", "my.bucket-1", "a/b/")),
    ("gs://my_bucket.x/a/b", ("gs", "my_bucket.x", "a/b/")),
    ("az://container-1/ckpt/run7/", ("az", "container-1", "ckpt/run7/")),
])
def test_parse_uri(uri, expected):
    assert base.parse_uri(uri) == expected


@pytest.mark.parametrize("uri,words", [
    ("/data/x", "not an object storage URI"),
    ("http://data/x", "not an object storage scheme"),
    ("ftp://data/x", "not an object storage scheme"),
    ("gs:///x", "names no bucket"),
    ("az:///x", "names no container"),
    ("gs://Data/x", "not a valid bucket name (Google Cloud Storage)"),
    ("az://my_container/x", "not a valid container name (Azure Blob Storage)"),
    ("az://a--b/x", "not a valid container name (Azure Blob Storage)"),
    ("s3://Data/x", "not a valid bucket name"),
    ("s3://data/a/../b", "'..' parts"),
])
def test_parse_uri_refuses(uri, words):
    with pytest.raises(base.StorageError) as err:
        base.parse_uri(uri)
    assert words in str(err.value)


def test_unknown_option_is_refused():
    with pytest.raises(base.StorageError, match="unknown storage options: secret"):
        base.open_store("s3://data/x", {"secret": "x"})


# --- verification ----------------------------------------------------------------------------------------

def test_verify_single_part_and_sha256(tmp_path):
    body = os.urandom(1000)
    path = tmp_path / "f"
    path.write_bytes(body)
    md5, sha = hashlib.md5(body).hexdigest(), hashlib.sha256(body).hexdigest()
    assert sync.verify(str(path), ObjectInfo("k", 1000, md5))[:2] == (True, "md5")
    assert sync.verify(str(path), ObjectInfo("k", 1000, "0" * 32, sha))[:2] == (True, "sha256")
    assert not sync.verify(str(path), ObjectInfo("k", 1000, md5, "0" * 64))[0]
    assert "size 1000, the object has 999" in sync.verify(str(path), ObjectInfo("k", 999, md5))[1]
    assert not sync.verify(str(path), ObjectInfo("k", 1000, "0" * 32))[0]
    ok, reason, _sha = sync.verify(str(path), ObjectInfo("k", 1000, md5), require_sha256=True)
    assert not ok and "no sha256 metadata" in reason


# 6 MiB is not a usual part size: it is found from size / parts
@pytest.mark.parametrize("part", [5 * MiB, 8 * MiB, 6 * MiB])
def test_verify_recomputes_multipart_etags(tmp_path, part):
    body = os.urandom(3 * part - 100)
    path = tmp_path / "f"
    path.write_bytes(body)
    etag = sync.multipart_etag([hashlib.md5(body[i:i + part]).digest() for i in range(0, len(body), part)])
    assert etag.endswith("-3")
    assert sync.verify(str(path), ObjectInfo("k", len(body), etag))[0]
    flipped = bytearray(body)
    flipped[part + 7] ^= 1
    path.write_bytes(bytes(flipped))
    ok, reason, _sha = sync.verify(str(path), ObjectInfo("k", len(body), etag))
    assert not ok and "multipart ETag" in reason


# --- pull --------------------------------------------------------------------------------------------------

def test_pull_plans_transfers_verifies_and_reruns_as_nothing(s3, tmp_path):
    bodies = dict(("ds/f%02d" % i, os.urandom(100 + i)) for i in range(12))
    bodies["ds/sub/deep/g"] = b"deep"
    for key, body in bodies.items():
        put(s3, key, body, sha=key != "ds/f03")
    put(s3, "ds-other/x", b"not under the prefix ds/")
    st, prefix = store()
    dest = tmp_path / "d"

    planned = sync.pull(st, prefix, str(dest), check_mode=True)
    assert planned["changed"] and sorted(w["key"] for w in planned["would_transfer"]) == sorted(bodies)
    assert not dest.exists(), "check mode writes nothing"

    res = sync.pull(st, prefix, str(dest), workers=4)
    assert sorted(res["transferred"]) == sorted(k[3:] for k in bodies) and res["changed"]
    assert res["bytes"] == sum(len(b) for b in bodies.values()) and not res["corrupt"] and not res["failed"]
    for key, body in bodies.items():
        assert (dest / key[3:]).read_bytes() == body
    manifest = json.loads((dest / sync.MANIFEST).read_text())["objects"]
    assert set(manifest) == set(bodies)

    again = sync.pull(st, prefix, str(dest))
    assert not again["transferred"] and not again["changed"] and len(again["present"]) == len(bodies)

    # a changed object and a local file someone altered come again; nothing else does
    put(s3, "ds/f01", b"new content")
    (dest / "f02").write_bytes(b"local edit")
    third = sync.pull(st, prefix, str(dest))
    assert sorted(third["transferred"]) == ["f01", "f02"]
    assert (dest / "f01").read_bytes() == b"new content" and (dest / "f02").read_bytes() == bodies["ds/f02"]


def test_pull_multipart_object_through_the_transfer_manager(s3, tmp_path):
    body = os.urandom(18 * MiB + 3)
    src = tmp_path / "big"
    src.write_bytes(body)
    s3.upload_file(str(src), "data", "ds/big")  # boto3's defaults: 8 MiB parts, no sha256 metadata
    assert s3.head_object(Bucket="data", Key="ds/big")["ETag"].strip('"').endswith("-3")
    st, prefix = store()
    res = sync.pull(st, prefix, str(tmp_path / "d"))
    assert res["transferred"] == ["big"] and not res["corrupt"]
    assert (tmp_path / "d" / "big").read_bytes() == body


def test_a_small_object_is_one_get_hashed_on_the_way(s3, tmp_path):
    body = os.urandom(3 * MiB)
    put(s3, "ds/small", body)
    s3.put_object(Bucket="data", Key="ds/lying", Body=b"not what the sha256 says",
                  Metadata={"sha256": hashlib.sha256(b"something else").hexdigest()})
    st, prefix = store()
    calls = []
    st.client.meta.events.register("before-call.s3", lambda model, **kw: calls.append(model.name))
    res = sync.pull(st, prefix, str(tmp_path / "d"))
    assert res["transferred"] == ["small"] and (tmp_path / "d" / "small").read_bytes() == body
    # the listing, then one GET an object: no HEAD, and the file is not read again to be verified
    assert sorted(calls) == ["GetObject", "GetObject", "HeadBucket", "ListObjectsV2"], calls
    # the hashes of the bytes received still catch an object whose content is not what it was uploaded as
    assert [c["key"] for c in res["corrupt"]] == ["ds/lying"] and "sha256" in res["corrupt"][0]["reason"]
    assert not (tmp_path / "d" / "lying").exists()


def test_corrupt_objects_are_skipped_and_never_placed(s3, tmp_path, monkeypatch):
    put(s3, "ds/good", b"good")
    put(s3, "ds/bad", b"bad bytes")
    st, prefix = store()
    garble(st, monkeypatch, "ds/bad")  # what a partial or garbled transfer leaves behind
    dest = tmp_path / "d"
    res = sync.pull(st, prefix, str(dest))
    assert res["transferred"] == ["good"]
    assert [c["key"] for c in res["corrupt"]] == ["ds/bad"] and "sha256" in res["corrupt"][0]["reason"]
    assert sorted(os.listdir(dest)) == [sync.MANIFEST, "good"], "no temp file, no final name for the corrupt one"
    assert "ds/bad" not in json.loads((dest / sync.MANIFEST).read_text())["objects"]


def test_require_sha256_skips_objects_without_one(s3, tmp_path):
    put(s3, "ck/step-100.pt", b"checked", sha=True)
    put(s3, "ck/step-200.pt", b"unchecked", sha=False)
    st, _prefix = store()
    res = sync.pull(st, "ck/", str(tmp_path), require_sha256=True)
    assert res["transferred"] == ["step-100.pt"] and [c["path"] for c in res["corrupt"]] == ["step-200.pt"]
    assert not (tmp_path / "step-200.pt").exists()


def test_a_failed_download_leaves_nothing_and_records_what_arrived(s3, tmp_path, monkeypatch):
    put(s3, "ds/a", b"a")
    put(s3, "ds/b", b"b")
    st, prefix = store()
    garble(st, monkeypatch, "ds/b", error=StorageError("connection reset"))
    res = sync.pull(st, prefix, str(tmp_path), workers=1)
    assert res["transferred"] == ["a"] and res["failed"][0]["key"] == "ds/b"
    assert sorted(os.listdir(tmp_path)) == [sync.MANIFEST, "a"]


def test_stale_temp_files_are_removed(s3, tmp_path):
    put(s3, "ds/a", b"a")
    (tmp_path / (".a" + sync.TMP_MARK + "xyz")).write_bytes(b"left by a killed run")
    st, prefix = store()
    sync.pull(st, prefix, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [sync.MANIFEST, "a"]


def test_shards_partition_the_objects(s3, tmp_path):
    keys = ["ds/f%03d" % i for i in range(60)]
    for key in keys:
        put(s3, key, key.encode())
    st, prefix = store()
    got = []
    for index in range(3):
        res = sync.pull(st, prefix, str(tmp_path / str(index)), shard=(index, 3))
        got.append(set(res["transferred"]))
        assert 8 <= len(res["transferred"]) <= 32, "roughly balanced"
    assert set.union(*got) == set(k[3:] for k in keys) and sum(len(g) for g in got) == len(keys)
    with pytest.raises(base.StorageError, match="shard 3 of 3"):
        sync.pull(st, prefix, str(tmp_path / "x"), shard=(3, 3))


def test_keys_that_cannot_be_files_are_refused(s3, tmp_path):
    put(s3, "ds/dir/", b"")
    st, prefix = store()
    assert sync.pull(st, prefix, str(tmp_path))["transferred"] == []  # a directory marker is not a file
    with pytest.raises(base.StorageError, match="cannot be stored as a file"):
        sync.relative_path("ds/a//b", "ds/")


def test_missing_bucket_and_missing_credentials_fail_before_anything_is_written(s3, tmp_path, monkeypatch):
    st, prefix = base.open_store("s3://no-such-bucket/x", {})
    with pytest.raises(base.StorageError) as err:
        sync.pull(st, prefix, str(tmp_path / "d"))
    assert "bucket no-such-bucket does not exist" in str(err.value)
    assert not (tmp_path / "d").exists()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    st, prefix = store()
    with pytest.raises(base.StorageError) as err:
        sync.pull(st, prefix, str(tmp_path / "d"))
    assert "no S3 credentials found" in str(err.value) and "access_key" in err.value.hint
    assert not (tmp_path / "d").exists()


# --- push and watch -----------------------------------------------------------------------------------------

def test_push_uploads_stable_files_once_with_their_sha256(s3, tmp_path):
    (tmp_path / "a.pt").write_bytes(b"aaa")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.pt").write_bytes(b"bbb")
    (tmp_path / ("x" + sync.TMP_MARK + "1")).write_bytes(b"never uploaded")
    st, _prefix = store()
    assert sync.push(st, str(tmp_path), "ck/", check_mode=True)["would_transfer"]
    assert "Contents" not in s3.list_objects_v2(Bucket="data", Prefix="ck/")
    res = sync.push(st, str(tmp_path), "ck/")
    assert sorted(res["transferred"]) == ["ck/a.pt", "ck/sub/b.pt"]
    head = s3.head_object(Bucket="data", Key="ck/a.pt")
    assert head["Metadata"]["sha256"] == hashlib.sha256(b"aaa").hexdigest()
    again = sync.push(st, str(tmp_path), "ck/")
    assert not again["transferred"] and not again["changed"]
    (tmp_path / "a.pt").write_bytes(b"aaaa")
    assert sync.push(st, str(tmp_path), "ck/")["transferred"] == ["ck/a.pt"]
    # gone from the store: pushed again
    s3.delete_object(Bucket="data", Key="ck/sub/b.pt")
    assert sync.push(st, str(tmp_path), "ck/")["transferred"] == ["ck/sub/b.pt"]


def test_push_waits_for_files_being_written(s3, tmp_path):
    (tmp_path / "new.pt").write_bytes(b"still being written")
    st, _prefix = store()
    res = sync.push(st, str(tmp_path), "ck/", stable_seconds=60)
    assert not res["transferred"] and res["unstable"] == ["ck/new.pt"]


def test_watch_pushes_until_stopped_then_once_more(s3, tmp_path):
    st, _prefix = store()
    stop, rounds = threading.Event(), []

    def on_round(res, totals):
        rounds.append(totals["final"])
        if len(rounds) == 1:
            (tmp_path / "step-1.pt").write_bytes(b"1")
        if len(rounds) == 3:
            (tmp_path / "step-2.pt").write_bytes(b"2")  # written just before the stop: the final round takes it
            stop.set()

    totals = sync.watch(st, str(tmp_path), "ck/", interval=0.01, stable_seconds=30, stop=stop, on_round=on_round)
    assert rounds[-1] is True and totals["uploaded"] == 2
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="data", Prefix="ck/")["Contents"]) == [
        "ck/step-1.pt", "ck/step-2.pt"]


def test_watch_woken_pushes_at_once_not_at_the_next_interval(s3, tmp_path):
    # a spot notice: the watcher sends SIGUSR1 (the CLI sets ``wake``) and the next round starts now, not in 3600 s
    st, _prefix = store()
    stop, wake, rounds = threading.Event(), threading.Event(), []

    def on_round(res, totals):
        rounds.append(time.time())
        if len(rounds) == 1:
            (tmp_path / "step-1.pt").write_bytes(b"1")
            wake.set()
        elif len(rounds) == 2:
            stop.set()
            wake.set()
    began = time.time()
    totals = sync.watch(st, str(tmp_path), "ck/", interval=3600, stable_seconds=0, stop=stop, on_round=on_round,
                        wake=wake)
    assert len(rounds) == 3 and time.time() - began < 60 and totals["uploaded"] == 1


def test_cli_push_pull_and_errors(s3, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "w.pt").write_bytes(b"weights")
    opts = tmp_path / "opts.json"
    opts.write_text(json.dumps({"region": "us-east-1"}))
    assert cli.main(["--options-file", str(opts), "push", str(src), "s3://data/ck"]) == 0
    assert json.loads(capsys.readouterr().out)["transferred"] == ["ck/w.pt"]
    assert cli.main(["pull", "s3://data/ck", str(tmp_path / "dst"), "--require-sha256"]) == 0
    assert (tmp_path / "dst" / "w.pt").read_bytes() == b"weights"
    capsys.readouterr()
    assert cli.main(["pull", "ftp://data/ck", str(tmp_path / "x")]) == 1
    assert "not an object storage scheme" in capsys.readouterr().err
    assert cli.main(["pull", "s3://data/ck", str(tmp_path / "s"), "--shard", "0/1", "--check"]) == 0
    assert not (tmp_path / "s").exists()
