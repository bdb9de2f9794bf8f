"""The Cloud Storage (gs://) and Azure Blob (az://) stores behind the Store interface, against the services'
emulators on loopback (gcp-storage-emulator from PyPI, Azurite from npm), driven through sync.pull/push as the
object_sync module and the checkpoint uploader drive them: round trips verified by sha256, objects written by
other tools verified by the service's own checksums (md5Hash/crc32c; Content-MD5, or per-range MD5 for a blob
written in blocks), corrupt objects never placed, and bad input refused before anything is copied."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import random
import socket
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from store_servers import AZ_ACCOUNT, AzuriteServer, GCSServer  # noqa: E402

PACKAGE = "ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._storage."
MiB = 1024 * 1024
STORES = ["gs", "az"]


def _mod(name):
    # looked up when a test runs (see test_storage.py: another test module may re-install the collection loader)
    return importlib.import_module(PACKAGE + name)


@pytest.fixture(scope="module")
def servers():
    with GCSServer(host="127.0.0.1") as gcs, AzuriteServer(host="127.0.0.1") as az:
        yield {"gs": gcs, "az": az}


class Remote(object):
    """One store's bucket/container through the service's own SDK: put and read objects behind the code's back."""

    def __init__(self, scheme, server, name):
        self.scheme, self.server, self.name = scheme, server, name
        self.handle = server.client(name)

    def put(self, key, body, sha256=None, blocks=False):
        meta = {"sha256": sha256} if sha256 else None
        if self.scheme == "gs":
            blob = self.handle.blob(key)
            blob.metadata = meta
            blob.upload_from_string(body)
        elif blocks:  # written in blocks with no Content-MD5, as azcopy and the SDKs write large blobs
            from azure.storage.blob import BlobBlock
            blob = self.handle.get_blob_client(key)
            ids = []
            for i in range(0, len(body), 3 * MiB):
                bid = base64.b64encode(b"%08d" % i).decode()
                blob.stage_block(bid, body[i:i + 3 * MiB])
                ids.append(BlobBlock(block_id=bid))
            blob.commit_block_list(ids, metadata=meta)
        else:
            self.handle.upload_blob(key, body, metadata=meta, overwrite=True)

    def get(self, key):
        if self.scheme == "gs":
            return self.handle.blob(key).download_as_bytes()
        return self.handle.download_blob(key).readall()

    def meta(self, key):
        if self.scheme == "gs":
            return self.handle.get_blob(key).metadata or {}
        return self.handle.get_blob_client(key).get_blob_properties().metadata or {}


@pytest.fixture(params=STORES)
def remote(request, servers):
    name = "t%s-%s" % (request.node.name.split("[")[0].replace("_", "-")[-40:].strip("-"), request.param)
    return Remote(request.param, servers[request.param], name.lower())


def open_store(remote, **options):
    opts = dict(remote.server.options(), **options)
    return _mod("base").open_store("%s://%s/data" % (remote.scheme, remote.name), opts)


def test_push_then_pull_round_trip_verified_and_idempotent(remote, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    rnd = random.Random(5)
    files = {"a.bin": rnd.randbytes(1000), "sub/b.bin": rnd.randbytes(9 * MiB + 3), "empty": b""}
    for rel, body in files.items():
        (src / rel).write_bytes(body)
    sync = _mod("sync")
    store, prefix = open_store(remote)
    res = sync.push(store, str(src), prefix)
    assert sorted(res["transferred"]) == ["data/a.bin", "data/empty", "data/sub/b.bin"] and not res["failed"]
    assert remote.get("data/sub/b.bin") == files["sub/b.bin"]
    assert remote.meta("data/a.bin")["sha256"] == hashlib.sha256(files["a.bin"]).hexdigest()
    again = sync.push(store, str(src), prefix)
    assert again["transferred"] == [] and len(again["present"]) == 3 and not again["changed"]

    dst = tmp_path / "dst"
    got = sync.pull(store, prefix, str(dst), require_sha256=True)
    assert sorted(got["transferred"]) == ["a.bin", "empty", os.path.join("sub", "b.bin")], got
    assert not got["corrupt"] and not got["failed"]
    for rel, body in files.items():
        assert (dst / rel).read_bytes() == body
    store.close()
    # a new store (a new run): nothing moves, check mode lists a new object and writes nothing
    store, prefix = open_store(remote)
    assert sync.pull(store, prefix, str(dst))["transferred"] == []
    remote.put("data/late.bin", b"late")
    planned = sync.pull(store, prefix, str(dst), check_mode=True)
    assert [w["path"] for w in planned["would_transfer"]] == ["late.bin"] and planned["changed"]
    assert not (dst / "late.bin").exists()
    store.close()


def test_objects_from_other_tools_are_verified_by_the_service_checksums(remote, tmp_path):
    """No sha256 metadata: GCS's md5Hash and crc32c; Azure's Content-MD5, or for a blob written in blocks (no
    Content-MD5) the MD5 the service computes for each range it sends."""
    rnd = random.Random(7)
    small, big = rnd.randbytes(5000), rnd.randbytes(9 * MiB + 11)
    remote.put("data/small.bin", small)
    remote.put("data/big.bin", big, blocks=True)
    sync = _mod("sync")
    store, prefix = open_store(remote)
    listed = dict((o.key, o) for o in store.list(prefix))
    reasons = {}
    for key in ("data/small.bin", "data/big.bin"):
        path = str(tmp_path / key.replace("/", "_"))
        info, digests = store.download(key, path, listed[key].size)
        ok, reasons[key], sha = sync.verify(path, info, digests=digests)
        assert ok, reasons[key]
        assert sha == hashlib.sha256(open(path, "rb").read()).hexdigest()
    if remote.scheme == "gs":
        assert reasons == {"data/small.bin": "md5Hash and crc32c", "data/big.bin": "md5Hash and crc32c"}
    else:
        assert reasons == {"data/small.bin": "Content-MD5",
                           "data/big.bin": "the MD5 of each range (the blob has no Content-MD5)"}
    # require_checksum: objects without the sha256 they were uploaded with are refused
    got = sync.pull(store, prefix, str(tmp_path / "strict"), require_sha256=True)
    assert sorted(c["key"] for c in got["corrupt"]) == ["data/big.bin", "data/small.bin"]
    assert sorted(os.listdir(tmp_path / "strict")) == [".aiinfra-manifest.json"]
    store.close()


def test_a_corrupt_object_is_never_placed(remote, tmp_path):
    remote.put("data/good.bin", b"fine", sha256=hashlib.sha256(b"fine").hexdigest())
    remote.put("data/bad.bin", b"not what was checksummed", sha256=hashlib.sha256(b"something else").hexdigest())
    sync = _mod("sync")
    store, prefix = open_store(remote)
    got = sync.pull(store, prefix, str(tmp_path))
    assert got["transferred"] == ["good.bin"]
    assert [c["key"] for c in got["corrupt"]] == ["data/bad.bin"] and "sha256" in got["corrupt"][0]["reason"]
    assert sorted(os.listdir(tmp_path)) == [".aiinfra-manifest.json", "good.bin"]
    assert "data/bad.bin" not in (tmp_path / ".aiinfra-manifest.json").read_text()
    store.close()


def test_a_service_checksum_that_does_not_match_is_corrupt(remote, tmp_path, monkeypatch):
    """Azure: the blob's Content-MD5 is a property anyone with write access can set - set to another MD5, the
    download is refused. GCS keeps md5Hash/crc32c itself (nobody can set them wrong): the listed md5Hash is
    altered on its way into the store's record instead, which is what the comparison reads."""
    body = b"bytes the service holds"
    remote.put("data/x.bin", body)
    if remote.scheme == "az":
        from azure.storage.blob import ContentSettings
        remote.handle.get_blob_client("data/x.bin").set_http_headers(
            ContentSettings(content_md5=bytearray(hashlib.md5(b"other bytes").digest())))
    else:
        gcs = _mod("gcs")
        real = gcs._listed

        def altered(blob):
            gen, _md5, crc, sha = real(blob)
            return gen, base64.b64encode(hashlib.md5(b"other bytes").digest()).decode(), crc, sha
        monkeypatch.setattr(gcs, "_listed", altered)
    sync = _mod("sync")
    store, prefix = open_store(remote)
    got = sync.pull(store, prefix, str(tmp_path))
    assert got["transferred"] == [] and len(got["corrupt"]) == 1, got
    reason = got["corrupt"][0]["reason"]
    assert ("md5Hash" if remote.scheme == "gs" else "Content-MD5") in reason
    assert hashlib.md5(body).hexdigest() in reason
    assert sorted(os.listdir(tmp_path)) == [".aiinfra-manifest.json"]
    store.close()


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("case", ["no-bucket", "unreachable", "rejected", "bad-options"])
def test_bad_input_fails_naming_the_cause_before_anything_is_copied(remote, tmp_path, case):
    remote.put("data/a.bin", b"a")
    uri = "%s://%s/data" % (remote.scheme, remote.name)
    opts = remote.server.options()
    if case == "no-bucket":
        uri = "%s://no-such-%s/data" % (remote.scheme, remote.scheme)
        words = "bucket no-such-gs does not exist" if remote.scheme == "gs" else \
            "container no-such-az does not exist in account %s" % AZ_ACCOUNT
    elif case == "unreachable":
        url = "http://127.0.0.1:%d" % _closed_port()
        opts["endpoint_url"] = url if remote.scheme == "gs" else url + "/" + AZ_ACCOUNT
        words = "cannot reach Cloud Storage at %s" % url if remote.scheme == "gs" else \
            "cannot reach the Blob endpoint of account %s" % AZ_ACCOUNT
    elif case == "rejected":
        if remote.scheme == "gs":
            # a service account key that is no key: refused before any request, naming the option (not its content)
            opts = dict(opts, anonymous=None, credentials=json.dumps({"type": "service_account", "client_email": "x"}))
            words = "gpu_cluster_storage_options.credentials is not a usable service account key"
        else:
            opts["account_key"] = base64.b64encode(b"not the account's key").decode()
            words = "the Azure credentials for account %s were rejected" % AZ_ACCOUNT
    else:
        if remote.scheme == "gs":
            opts = dict(opts, anonymous=None, credentials="{not json")
            words = "gpu_cluster_storage_options.credentials is not a service account key's JSON"
        else:
            opts = dict(opts, account_name="")
            words = "needs the storage account: gpu_cluster_storage_options.account_name"
    base, sync = _mod("base"), _mod("sync")
    with pytest.raises(base.StorageError) as err:
        store, prefix = base.open_store(uri, opts)
        sync.pull(store, prefix, str(tmp_path / "dst"))
    assert words in str(err.value), str(err.value)
    assert "not the account" not in str(err.value) and "{not json" not in str(err.value)
    assert not (tmp_path / "dst").exists()


def test_one_options_dict_serves_every_store_and_conflicts_are_refused(servers):
    base = _mod("base")
    both = dict(servers["gs"].options(), **servers["az"].options())
    both["endpoint_url"] = servers["gs"].url
    store, prefix = base.open_store("gs://any-bucket/p", both)  # the az keys are Azure's, ignored here
    assert store.scheme == "gs" and prefix == "p/" and store.options == servers["gs"].options()
    with pytest.raises(base.StorageError, match="both credentials and anonymous"):
        base.open_store("gs://bkt/p", {"anonymous": True, "credentials": "{}"})
    with pytest.raises(base.StorageError, match="both account_key and sas_token"):
        base.open_store("az://ctr/p", {"account_name": "a", "account_key": "k", "sas_token": "s"})
    with pytest.raises(base.StorageError, match="unknown storage options: project"):
        base.open_store("gs://bkt/p", {"project": "x"})


def test_a_sas_token_is_used(servers, tmp_path):
    """A container SAS (read, list, write, create) made with the account key, as an admin would hand it out."""
    import datetime
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    az = servers["az"]
    az.client("sas")
    token = generate_container_sas(AZ_ACCOUNT, "sas", account_key=az.options()["account_key"],
                                   permission=ContainerSasPermissions(read=True, list=True, write=True, create=True),
                                   expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    (tmp_path / "w.pt").write_bytes(b"weights")
    opts = {"account_name": AZ_ACCOUNT, "endpoint_url": az.account_url, "sas_token": "?" + token}
    base, sync = _mod("base"), _mod("sync")
    store, prefix = base.open_store("az://sas/ck", opts)
    assert sync.push(store, str(tmp_path), prefix)["transferred"] == ["ck/w.pt"]
    assert sync.pull(store, prefix, str(tmp_path / "back"), require_sha256=True)["transferred"] == ["w.pt"]


def test_a_missing_client_library_names_what_to_install(monkeypatch):
    gcs, azblob = _mod("gcs"), _mod("azblob")
    monkeypatch.setattr(gcs, "HAS_GCS", False)
    monkeypatch.setattr(azblob, "HAS_AZURE", False)
    base = _mod("base")
    with pytest.raises(base.StorageError, match="google-cloud-storage is not installed .*client.yml"):
        base.open_store("gs://bkt/p", {})
    with pytest.raises(base.StorageError, match="azure-storage-blob is not installed .*client.yml"):
        base.open_store("az://ctr/p", {"account_name": "a"})


def test_cli_takes_each_store_from_its_options_file(servers, tmp_path, capsys):
    cli = _mod("cli")
    for scheme, server in sorted(servers.items()):
        server.client("cli")
        src = tmp_path / scheme
        src.mkdir()
        (src / "step-1.pt").write_bytes(b"w" * 100)
        opts = tmp_path / ("%s.json" % scheme)
        opts.write_text(json.dumps(server.options()))
        assert cli.main(["--options-file", str(opts), "push", str(src), "%s://cli/ck" % scheme]) == 0
        assert json.loads(capsys.readouterr().out)["transferred"] == ["ck/step-1.pt"]
        assert cli.main(["--options-file", str(opts), "pull", "%s://cli/ck" % scheme, str(tmp_path / "back" / scheme),
                         "--require-sha256"]) == 0
        assert (tmp_path / "back" / scheme / "step-1.pt").read_bytes() == b"w" * 100
        capsys.readouterr()


def test_cli_takes_the_options_from_the_uploaders_environment(servers, tmp_path, capsys, monkeypatch):
    """The checkpoint uploader's EnvironmentFile hands gs:// / az:// options over as base64 of their JSON."""
    cli = _mod("cli")
    servers["az"].client("envopts")
    (tmp_path / "w.pt").write_bytes(b"x")
    monkeypatch.delenv("AIINFRA_STORAGE_OPTIONS_FILE", raising=False)
    monkeypatch.setenv("AIINFRA_STORAGE_OPTIONS_B64", base64.b64encode(json.dumps(servers["az"].options()).encode()).decode())
    assert cli.main(["push", str(tmp_path), "az://envopts/ck"]) == 0
    assert json.loads(capsys.readouterr().out)["transferred"] == ["ck/w.pt"]
    monkeypatch.setenv("AIINFRA_STORAGE_OPTIONS_B64", "not base64 {")
    assert cli.main(["push", str(tmp_path), "az://envopts/ck"]) == 1
    assert "AIINFRA_STORAGE_OPTIONS_B64 is not base64 of a JSON object" in capsys.readouterr().err
