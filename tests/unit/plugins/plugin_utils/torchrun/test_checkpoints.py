"""The checkpoint part of the run report: what each node restored and uploaded (torchrun_checkpoint_uri)."""

from __future__ import annotations

import base64
import json

from ansible_collections.aiinfra.gpu_cluster.plugins.filter.torchrun import torchrun_checkpoints
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import checkpoints as ck


def slurped(data):
    return {"content": base64.b64encode(json.dumps(data).encode()).decode(), "encoding": "base64"}


HOSTVARS = [
    {"inventory_hostname": "n0",
     "_torchrun_restore": {"changed": True, "transferred": ["ckpt-00000050.pt"], "present": [],
                           "corrupt": [{"key": "jobs/x/ckpt-00000100.pt", "path": "ckpt-00000100.pt",
                                        "reason": "sha256 mismatch"}], "failed_transfers": [],
                           "bytes": 2_000_000},
     "_torchrun_uploader": {"stdout": "inactive"},
     "_torchrun_uploaded": slurped({"rounds": 9, "uploaded": 3, "bytes": 3_000_000, "errors": 0,
                                    "uploaded_keys": ["a", "b", "c"], "final": True})},
    {"inventory_hostname": "n1",
     "_torchrun_restore": {"changed": False, "transferred": [], "present": ["ckpt-00000050.pt"], "corrupt": [],
                           "bytes": 0},
     "_torchrun_uploader": {"stdout": "inactive"},
     "_torchrun_uploaded": slurped({"rounds": 9, "uploaded": 0, "bytes": 0, "errors": 0, "uploaded_keys": [],
                                    "final": True})},
]


def test_totals_corrupt_objects_and_lines():
    got = torchrun_checkpoints(HOSTVARS, "s3://b/jobs/x")
    summary = ck.summarize(got["uri"], got["nodes"])
    assert (summary["restored_files"], summary["restored_bytes"]) == (1, 2_000_000)
    assert (summary["uploaded_files"], summary["uploaded_bytes"], summary["final_push"]) == (3, 3_000_000, True)
    assert summary["corrupt"] == [{"key": "jobs/x/ckpt-00000100.pt", "path": "ckpt-00000100.pt",
                                   "reason": "sha256 mismatch", "host": "n0"}]
    assert summary["nodes"]["n0"]["uploaded_keys"] == ["a", "b", "c"] and summary["nodes"]["n1"]["already_there"] == 1
    json.dumps(summary)
    text = "\n".join(ck.lines(summary))
    assert "restored 1 files (2.0 MB)" in text and "uploaded 3 files (3.0 MB), last push done" in text
    assert "ckpt-00000100.pt on n0 (sha256 mismatch)" in text


def test_an_unfinished_or_missing_last_push_is_said():
    hostvars = [dict(HOSTVARS[0], _torchrun_uploader={"stdout": "deactivating"}),
                dict(HOSTVARS[1], _torchrun_uploaded={"failed": True, "msg": "file not found"})]
    summary = ck.summarize("s3://b/x", torchrun_checkpoints(hostvars, "s3://b/x")["nodes"])
    assert summary["final_push"] is False
    assert any("still running its last push" in e for e in summary["upload_errors"])
    assert "last push NOT confirmed" in ck.lines(summary)[0]


def test_skipped_tasks_and_no_checkpoints():
    nodes = ck.gather([{"inventory_hostname": "n0", "_torchrun_restore": {"skipped": True},
                        "_torchrun_uploaded": {"skipped": True}}])
    assert nodes == {"n0": {"restore": None, "upload": None, "uploader": None}}
    assert ck.lines(None) == []
