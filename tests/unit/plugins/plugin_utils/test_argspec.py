# -*- coding: utf-8 -*-
"""Action plugins validate against their module's DOCUMENTATION (doc fragments included)."""

from __future__ import annotations

import os

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.argspec import argument_spec_for, option_spec

ACTION_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "action")


def test_option_spec_keeps_only_spec_keys_and_nests_suboptions():
    doc = {"a": {"description": ["x"], "type": "list", "elements": "dict", "default": [], "version_added": "1.0",
                 "suboptions": {"b": {"description": "y", "type": "int", "required": True}}}}
    assert option_spec(doc) == {"a": {"type": "list", "elements": "dict", "default": [],
                                      "options": {"b": {"type": "int", "required": True}}}}


def test_watch_spec_comes_from_the_module_and_its_fragment():
    spec = argument_spec_for("torchrun_watch")
    # run_id and base_dir come from the torchrun doc fragment, the rest from the module's own options
    assert spec["run_id"] == {"type": "str", "required": True}
    assert spec["base_dir"]["type"] == "path"
    assert spec["interval"] == {"type": "float", "default": 2.0}
    result = ArgumentSpecValidator(spec).validate({"run_id": "r1", "hosts": {"a": "0"}, "interval": "3"})
    assert not result.error_messages
    assert result.validated_parameters["interval"] == 3.0
    assert result.validated_parameters["base_dir"] == "/var/lib/aiinfra/torchrun"
    bad = ArgumentSpecValidator(spec).validate({"run_id": "r1", "hosts": {}, "no_such_option": 1})
    assert "no_such_option" in " ".join(bad.error_messages)


def test_a_fresh_copy_each_time():
    first = argument_spec_for("torchrun_watch")
    first["run_id"]["required"] = False
    assert argument_spec_for("torchrun_watch")["run_id"]["required"] is True


def test_no_action_plugin_hand_writes_its_spec():
    for name in sorted(os.listdir(ACTION_DIR)):
        if name.endswith(".py"):
            with open(os.path.join(ACTION_DIR, name)) as handle:
                text = handle.read()
            if name.startswith("torchrun_watch"):
                assert "ARGUMENT_SPEC = dict(" not in text, name


def test_unknown_module():
    with pytest.raises(Exception, match="was not found"):
        argument_spec_for("no_such_module")
