# -*- coding: utf-8 -*-
"""object_sync's result when some transfers fail: the list survives fail_json."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils import basic

from ansible_collections.aiinfra.gpu_cluster.plugins.modules import object_sync


class Exit(Exception):
    pass


def run_main(monkeypatch, tmp_path, res):
    args = {"src": "s3://bucket/prefix", "dest": str(tmp_path / "d")}
    try:  # ansible-core 2.19+
        from ansible.module_utils.testing import patch_module_args
    except ImportError:
        patch_module_args = None
    out = {}

    def leave(self, **kwargs):
        out.update(kwargs)
        raise Exit()

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", lambda self, **kw: leave(self, **dict(kw, failed=False)))
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", lambda self, **kw: leave(self, **dict(kw, failed=True)))
    monkeypatch.setattr(object_sync, "open_store", lambda uri, options: (object(), "prefix"))
    monkeypatch.setattr(object_sync, "transfer", lambda *a: dict(res))
    if patch_module_args:
        with patch_module_args(args), pytest.raises(Exit):
            object_sync.main()
    else:
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode())
        with pytest.raises(Exit):
            object_sync.main()
    return out


def result(failed):
    return {"changed": True, "transferred": ["a"], "present": [], "would_transfer": [], "corrupt": [],
            "failed": failed, "bytes": 1, "seconds": 0.1}


def test_failed_transfers_are_returned_with_the_failure(monkeypatch, tmp_path):
    bad = [{"key": "prefix/b", "path": "b", "error": "403 Forbidden"}]
    out = run_main(monkeypatch, tmp_path, result(bad))
    assert out["failed"] is True
    assert out["failed_transfers"] == bad and out["transferred"] == ["a"]
    assert out["msg"] == "1 of 2 transfers failed; first: 403 Forbidden"


def test_success_has_an_empty_list(monkeypatch, tmp_path):
    out = run_main(monkeypatch, tmp_path, result([]))
    assert out["failed"] is False and out["failed_transfers"] == []
