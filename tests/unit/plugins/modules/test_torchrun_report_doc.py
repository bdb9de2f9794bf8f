"""plugins/modules/torchrun_report.py, the documentation of the torchrun_report action, in ansible-doc."""

from __future__ import annotations

from module_docs import check_action_doc_stub


def test_the_doc_stub_renders_every_option_the_action_takes():
    entry, text = check_action_doc_stub("torchrun_report")
    options = entry["doc"]["options"]
    assert options["storage_options"]["type"] == "dict" and options["report_uri"]["default"] == ""
    assert options["outputs"]["type"] == "dict" and options["attempts"]["elements"] == "dict"
    assert {"attempts", "exit_code", "nodes", "status"} <= set(entry["return"]["summary"]["contains"])
    assert "summary.json" in text
