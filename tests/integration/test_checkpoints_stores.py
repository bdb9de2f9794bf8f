"""Checkpoints (torchrun_checkpoint_uri) in gs:// and az:// on real local nodes: Cloud Storage's emulator
(gcp-storage-emulator) and Azure's (Azurite) on the cluster network's gateway, as test_checkpoints.py does with moto.

One 2-node cluster with PyTorch (the worker's shared cluster, tests/conftest.py SharedCluster) runs a job per store
whose uploader (the storage client's ``watch``, credentials from the root-only EnvironmentFile) puts its checkpoints
into the store; then every node's copy of the job's checkpoints is removed (what a new cluster has of them: nothing)
and a job per store resumes at the checkpointed step from the store alone, skipping (and naming) a newer corrupt
object and a newer one without its completeness marker (README: the checkpoint completeness rule).
test_checkpoints.py resumes on a new cluster, provisioned after a teardown, from S3; here the stores' own clients are
what differs, so the nodes are emptied rather than replaced (a rebuild costs minutes of CI time and tests nothing the
S3 case does not). The emulators are stopped at the end and the shared cluster removed at the session's end, pass or
fail."""

from __future__ import annotations

import hashlib

import pytest

from conftest import run_playbook
from store_servers import AzuriteServer, GCSServer
from test_checkpoints import CKPT_DIR, sh, summary_of

TRAIN = "playbooks/train.yml"
SIZE = 2
BUCKET = "ckpt"
STORES = ["gs", "az"]


def prefix(scheme):
    return "jobs/%s-example" % scheme


def with_servers(state):
    """The cluster handed over by the worker's SharedCluster, with a GCS and an Azurite server on its gateway."""
    state = dict(state, servers={})
    try:
        state["servers"]["gs"] = GCSServer(state["name"]).start()
        state["servers"]["az"] = AzuriteServer(state["name"]).start()
        for server in state["servers"].values():
            server.client(BUCKET)  # the bucket / container the jobs write into (created)
    except BaseException:
        stop_servers(state)
        raise
    return state


def stop_servers(state):
    for server in state.get("servers", {}).values():
        server.stop()
    state["servers"] = {}


class Objects(object):
    """One store's ckpt bucket/container through the service's own SDK."""

    def __init__(self, scheme, server):
        self.scheme, self.handle = scheme, server.client(BUCKET)

    def keys(self):
        pre = prefix(self.scheme) + "/"
        if self.scheme == "gs":
            names = [b.name for b in self.handle.list_blobs(prefix=pre)]
        else:
            names = list(self.handle.list_blob_names(name_starts_with=pre))
        return sorted(n[len(pre):] for n in names)

    def get(self, key):
        name = "%s/%s" % (prefix(self.scheme), key)
        if self.scheme == "gs":
            blob = self.handle.get_blob(name)
            return blob.download_as_bytes(), dict(blob.metadata or {})
        blob = self.handle.get_blob_client(name)
        return blob.download_blob().readall(), dict(blob.get_blob_properties().metadata or {})

    def put(self, key, body, meta):
        name = "%s/%s" % (prefix(self.scheme), key)
        if self.scheme == "gs":
            blob = self.handle.blob(name)
            blob.metadata = meta or None
            blob.upload_from_string(body)
        else:
            self.handle.upload_blob(name, body, metadata=meta or None, overwrite=True)


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    """The worker's shared cluster (tests/conftest.py SharedCluster) with the stores' servers; the servers are
    stopped at the end, pass or fail."""
    state = {}
    try:
        state.update(with_servers(shared_cluster.take(SIZE)))
        yield state
    finally:
        stop_servers(state)


def job_dir(scheme):
    return CKPT_DIR.replace("/example/", "/%s-example/" % scheme)


def train(cluster, tmp_path, scheme, run_id, steps):
    params = {"torchrun_runs_dir": str(tmp_path / "runs"), "torchrun_run_id": run_id,
              "torchrun_job_name": "%s-example" % scheme, "torchrun_progress_interval": 5,
              "torchrun_checkpoint_uri": "%s://%s/%s" % (scheme, BUCKET, prefix(scheme)),
              "torchrun_checkpoint_dir": job_dir(scheme),
              "torchrun_checkpoint_interval": 1, "torchrun_checkpoint_stable_seconds": 1,
              "torchrun_script_args": ["--steps", str(steps), "--checkpoint-every", "10"],
              "gpu_cluster_storage_options": cluster["servers"][scheme].options()}
    proc = run_playbook(TRAIN, inventory=cluster["inventory"], extra_vars=params, check=False, timeout=900)
    return proc, summary_of(tmp_path, run_id)


def test_checkpoints_go_to_each_store_and_emptied_nodes_resume_from_it(cluster, tmp_path):
    saved = {}
    for scheme in STORES:
        proc, summary = train(cluster, tmp_path, scheme, "first-%s" % scheme, 30)
        assert proc.returncode == 0 and summary["status"] == "succeeded", proc.stdout[-4000:]
        ckpt = summary["checkpoints"]
        assert ckpt["final_push"] is True and ckpt["upload_errors"] == [], ckpt
        store = Objects(scheme, cluster["servers"][scheme])
        keys = store.keys()
        assert ["ckpt-%08d.pt" % s for s in (10, 20, 30)] == [k for k in keys if k.startswith("ckpt-")
                                                              and not k.endswith(".sha256")], keys
        # the completeness rule (README): each checkpoint with its marker, NAME.sha256 holding NAME's sha256
        assert ["ckpt-%08d.pt.sha256" % s for s in (10, 20, 30)] == [k for k in keys if k.endswith(".sha256")], keys
        assert not [k for k in keys if ".tmp" in k or k.startswith(".")], keys
        saved[scheme] = dict((key, store.get(key)) for key in keys)
        for key, (body, meta) in saved[scheme].items():
            assert meta.get("sha256") == hashlib.sha256(body).hexdigest(), (scheme, key)
            if key.endswith(".sha256"):
                assert body.split()[0].decode() == hashlib.sha256(saved[scheme][key[:-7]][0]).hexdigest(), key
        if scheme == "az":
            key = cluster["servers"]["az"].options()["account_key"]
            assert key not in proc.stdout
            node0 = cluster["nodes"][0]
            # the uploader's credentials (a root-only file while it ran) are gone from the node after its last push
            assert sh(node0, "ls -A /etc/aiinfra/torchrun/").stdout.split() == []
            assert key not in sh(node0, "cat /var/lib/aiinfra/torchrun/runs/first-az/*; ps -eo args").stdout

    # the stores are all the nodes will have: every node's copy of the jobs' checkpoints goes
    for scheme in STORES:
        for node in cluster["nodes"]:
            sh(node, "rm -rf %s" % job_dir(scheme))
            assert sh(node, "ls -A %s 2>/dev/null" % job_dir(scheme)).stdout.split() == [], node
    for scheme in STORES:
        store = Objects(scheme, cluster["servers"][scheme])
        for key, (body, meta) in saved[scheme].items():
            store.put(key, body, meta)
        good = saved[scheme]["ckpt-00000030.pt"][0]
        whole = hashlib.sha256(good).hexdigest()
        # newer than the good ones and never to be taken. Corrupt: half the bytes under the whole file's sha256, with
        # a marker vouching for the whole file (the transfer's own check refuses it, and then its marker)
        store.put("ckpt-00000040.pt", good[: len(good) // 2], {"sha256": whole})
        marker = ("%s  ckpt-00000040.pt\n" % whole).encode()
        store.put("ckpt-00000040.pt.sha256", marker, {"sha256": hashlib.sha256(marker).hexdigest()})
        # incomplete: intact bytes, but no marker (by the completeness rule, its writer may not have finished)
        store.put("ckpt-00000045.pt", good, {"sha256": whole})

    for scheme in STORES:
        proc, summary = train(cluster, tmp_path, scheme, "resumed-%s" % scheme, 50)
        assert proc.returncode == 0 and summary["status"] == "succeeded", proc.stdout[-4000:]
        assert summary["metrics"]["resumed_from_step"] == 30, (scheme, proc.stdout[-3000:])
        ckpt = summary["checkpoints"]
        assert ckpt["restored_files"] == 2 * 3 * SIZE, ckpt  # 3 checkpoints and their markers on each node
        reasons = dict((c["path"], c["reason"]) for c in ckpt["corrupt"])
        assert sorted(reasons) == ["ckpt-00000040.pt", "ckpt-00000040.pt.sha256", "ckpt-00000045.pt"], ckpt
        assert len(ckpt["corrupt"]) == 3 * SIZE, ckpt  # named on every node
        assert reasons["ckpt-00000040.pt"].startswith("sha256 "), reasons  # corrupt: its bytes fail its checksum
        assert reasons["ckpt-00000040.pt.sha256"].startswith("incomplete: the file it vouches for"), reasons
        assert reasons["ckpt-00000045.pt"].startswith("incomplete: no valid ckpt-00000045.pt.sha256"), reasons
        assert "ckpt-00000040.pt" in proc.stdout and "skipped on restore" in proc.stdout
        # the job's own step 40 replaced the corrupt object, and 50 followed
        store = Objects(scheme, cluster["servers"][scheme])
        assert "ckpt-00000050.pt" in store.keys()
        body, meta = store.get("ckpt-00000040.pt")
        assert meta.get("sha256") == hashlib.sha256(body).hexdigest(), scheme
        assert store.get("ckpt-00000040.pt.sha256")[0].split()[0].decode() == hashlib.sha256(body).hexdigest()
        for node in cluster["nodes"]:
            left = sh(node, "ls -A %s" % job_dir(scheme)).stdout.split()
            assert not [f for f in left if ".aiinfra-part-" in f], (node, left)
