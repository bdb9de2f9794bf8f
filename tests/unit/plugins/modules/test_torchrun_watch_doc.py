"""plugins/modules/torchrun_watch.py, the documentation of the torchrun_watch action, in ansible-doc."""

from __future__ import annotations

from module_docs import check_action_doc_stub


def test_the_doc_stub_renders_every_option_the_action_takes():
    entry, text = check_action_doc_stub("torchrun_watch")
    options = entry["doc"]["options"]
    # run_id and base_dir come from the torchrun doc fragment
    assert options["run_id"]["required"] is True and options["base_dir"]["type"] == "path"
    assert options["interval"]["default"] == 2.0
    assert "verdict" in entry["return"] and "nodes" in entry["return"]
    assert "node_timeout" in text
