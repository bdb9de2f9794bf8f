"""torchrun_report_uri: the whole run directory reaches object storage (a moto S3 server) after the report, whatever
the run's status, with the storage options the dataset role uses; a store that cannot take it fails the report.
The real train (a node stopped, the report uploaded) is in test_lowest_core.py; this is the controller side alone."""

from __future__ import annotations

import json
import time

from s3_server import S3Server
from conftest import run_playbook

PLAY = "tests/integration/playbooks/report_uri.yml"
LOG0 = "\n".join(['{"event": "step", "step": %d, "loss": %.3f, "rank": 0}' % (s, 2.0 / s) for s in range(1, 21)])


def run_dir(tmp_path, run_id):
    path = tmp_path / "runs" / run_id
    (path / "node-0" / "outputs").mkdir(parents=True)
    (path / "node-0" / "torchrun.log").write_text(LOG0 + "\n")
    (path / "node-0" / "outputs" / "predictions.jsonl").write_text('{"id": 1}\n')
    (path / "node-1").mkdir()
    (path / "node-1" / "torchrun.log").write_text(LOG0.replace('"rank": 0', '"rank": 1') + "\n")
    return path


def keys(client, bucket, prefix):
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_the_run_directory_is_uploaded_even_when_the_run_failed(tmp_path):
    path = run_dir(tmp_path, "rep1")
    with S3Server(host="127.0.0.1") as s3:
        client = s3.client()
        client.create_bucket(Bucket="reports")
        proc = run_playbook(PLAY, extra_vars={"run_id": "rep1", "run_dir": str(path), "started": time.time() - 30,
                                              "report_uri": "s3://reports/team-a/",
                                              "gpu_cluster_storage_options": s3.options()}, check=False)
        # no verdict from the watch: the report fails the run, and the directory is uploaded all the same
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert "the watch ended without a verdict" in proc.stdout
        assert "report: s3://reports/team-a/rep1/" in proc.stdout
        stored = keys(client, "reports", "team-a/rep1/")
        local = sorted("team-a/rep1/" + str(p.relative_to(path)) for p in path.rglob("*")
                       if p.is_file() and not p.name.startswith(".aiinfra-"))
        assert stored == local, (stored, local)
        for name in ("summary.json", "summary.txt", "node-0/torchrun.log", "node-1/torchrun.log",
                     "node-0/outputs/predictions.jsonl"):
            assert "team-a/rep1/" + name in stored, stored
        summary = json.loads(client.get_object(Bucket="reports", Key="team-a/rep1/summary.json")["Body"].read())
        assert summary["report_uri"] == "s3://reports/team-a/rep1/" and summary["status"] == "failed"
        assert s3.secret not in proc.stdout


def test_a_store_that_refuses_fails_a_successful_report_naming_it(tmp_path):
    path = run_dir(tmp_path, "rep2")
    watch = {"verdict": {"done": True, "status": "succeeded", "reason": "", "failed": [], "message": "",
                         "phases": {"node-0": "succeeded", "node-1": "succeeded"}},
             "nodes": {"node-0": {"exit": {"status": "0"}, "nproc_per_node": 1},
                       "node-1": {"exit": {"status": "0"}, "nproc_per_node": 1}}}
    with S3Server(host="127.0.0.1") as s3:
        # no such bucket
        proc = run_playbook(PLAY, extra_vars={"run_id": "rep2", "run_dir": str(path), "started": time.time() - 30,
                                              "report_uri": "s3://missing-bucket/x", "watch": watch,
                                              "gpu_cluster_storage_options": s3.options()}, check=False)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "could not be uploaded to s3://missing-bucket/x/rep2/" in proc.stdout, proc.stdout[-3000:]
    assert "NOT uploaded" in proc.stdout
    assert json.loads((path / "summary.json").read_text())["report_uri"] == "s3://missing-bucket/x/rep2/"
