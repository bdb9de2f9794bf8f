# -*- coding: utf-8 -*-
"""Action plugins validate against their module's DOCUMENTATION (doc fragments included), and every action plugin
accepts exactly the options ``ansible-doc`` shows for it."""

from __future__ import annotations

import ast
import importlib
import os
import types

import pytest

from ansible.errors import AnsibleError
from ansible.module_utils import basic
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.argspec import (
    SPEC_KEYS, argument_spec_for, option_spec)

ACTION_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "action")
PACKAGE = "ansible_collections.aiinfra.gpu_cluster.plugins"
ACTIONS = sorted(name[:-3] for name in os.listdir(ACTION_DIR) if name.endswith(".py") and name != "__init__.py")


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


def hand_written_specs(text):
    """Where ``text`` spells an argument spec itself: ``ARGUMENT_SPEC = dict(``, or any mapping (``dict(...)`` or
    ``{...}``) of option entries that carry a ``type`` (``dict(type="str", ...)`` / ``{"type": "str", ...}``), or
    ``_VALID_ARGS``."""
    found = ["line %d: ARGUMENT_SPEC = dict(" % (n + 1) for n, line in enumerate(text.splitlines())
             if line.replace(" ", "").startswith("ARGUMENT_SPEC=dict(")]

    def option_entry(node):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict":
            return any(k.arg == "type" for k in node.keywords)
        return isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "type" for k in node.keys)

    for node in ast.walk(ast.parse(text)):
        values = (node.values if isinstance(node, ast.Dict) else
                  [k.value for k in node.keywords] if isinstance(node, ast.Call) and getattr(node.func, "id", None) ==
                  "dict" else [])
        if any(option_entry(v) for v in values):
            found.append("line %d: a mapping of option specs" % node.lineno)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_VALID_ARGS" for t in node.targets):
            found.append("line %d: _VALID_ARGS" % node.lineno)
    return found


def test_the_hand_written_spec_check_finds_one():
    assert hand_written_specs('ARGUMENT_SPEC = dict(\n    run_id=dict(type="str", required=True),\n)\n')
    assert hand_written_specs('SPEC = {"run_id": {"type": "str"}}\n')
    assert hand_written_specs('class A:\n    _VALID_ARGS = frozenset(("a",))\n')
    assert not hand_written_specs('spec = argument_spec_for("x")\nresult = dict(changed=False, type="x")\n')


@pytest.mark.parametrize("name", ACTIONS)
def test_no_action_plugin_hand_writes_its_spec(name):
    with open(os.path.join(ACTION_DIR, name + ".py")) as handle:
        assert hand_written_specs(handle.read()) == [], name


class _Accepted(Exception):
    """Raised by the stand-ins below with the spec an action validated against, or the module it ran."""


def _module_spec(short):
    """The argument spec that plugins/modules/SHORT.py's main() builds its AnsibleModule with."""
    module = importlib.import_module("%s.modules.%s" % (PACKAGE, short))

    def capture(self, argument_spec=None, **kwargs):
        raise _Accepted(argument_spec)
    original = basic.AnsibleModule.__init__
    basic.AnsibleModule.__init__ = capture
    try:
        module.main()
    except _Accepted as accepted:
        return accepted.args[0]
    finally:
        basic.AnsibleModule.__init__ = original
    raise AssertionError("%s: main() built no AnsibleModule" % short)


def accepted_spec(name, monkeypatch):
    """What action plugin NAME accepts: the spec it validates its arguments against, or, for an action that runs a
    module with its arguments, that module's argument spec. Returns (module name documented, spec)."""
    plugin = importlib.import_module("%s.action.%s" % (PACKAGE, name))

    def validated(self, argument_spec=None, **kwargs):
        raise _Accepted("validated", argument_spec)

    def executed(self, module_name=None, module_args=None, **kwargs):
        raise _Accepted("module", module_name)
    monkeypatch.setattr(ActionBase, "validate_argument_spec", validated)
    monkeypatch.setattr(ActionBase, "_execute_module", executed)
    task = types.SimpleNamespace(args={}, async_val=0, check_mode=False, action="aiinfra.gpu_cluster." + name,
                                 delegate_to=None, no_log=False)
    connection = types.SimpleNamespace(_shell=types.SimpleNamespace(tmpdir="/nonexistent"))
    action = plugin.ActionModule(task, connection, None, None, None, None)
    with pytest.raises(_Accepted) as caught:
        action.run(task_vars={})
    how, what = caught.value.args
    if how == "validated":
        return name, what
    short = what.split(".")[-1]
    return short, _module_spec(short)


def comparable(spec):
    """The parts of a spec its documentation can say (not no_log, which validate-modules refuses in a doc)."""
    out = {}
    for option, entry in spec.items():
        entry = dict((k, v) for k, v in entry.items() if k in SPEC_KEYS and k != "no_log")
        entry.setdefault("type", "str")
        entry.pop("required", None) if entry.get("required") is False else None
        if sorted(entry.get("aliases") or []):
            entry["aliases"] = sorted(entry["aliases"])
        out[option] = entry
    return out


@pytest.mark.parametrize("name", ACTIONS)
def test_every_action_accepts_exactly_what_its_module_documents(name, monkeypatch):
    documented_by, spec = accepted_spec(name, monkeypatch)
    # an action plugin is documented by the module of its own name (what ansible-doc shows for it)
    assert documented_by == name
    documented = argument_spec_for(name)
    assert sorted(spec) == sorted(documented)
    assert comparable(spec) == comparable(documented)
    # a documented suboption list is what the module validates, where the module validates suboptions itself
    for option, entry in spec.items():
        if entry.get("options"):
            assert comparable(entry["options"]) == comparable(documented[option].get("options") or {}), option


def test_an_undocumented_option_is_refused_by_each_validating_action(monkeypatch):
    for name in ACTIONS:
        documented_by, spec = accepted_spec(name, monkeypatch)
        result = ArgumentSpecValidator(spec).validate({"no_such_option": 1})
        assert "no_such_option" in " ".join(result.error_messages), name


def test_the_report_keeps_the_store_connection_secret(monkeypatch):
    documented_by, spec = accepted_spec("torchrun_report", monkeypatch)
    assert spec["storage_options"]["no_log"] is True
    assert [k for k, v in spec.items() if v.get("no_log")] == ["storage_options"]


def test_a_no_log_option_must_be_documented():
    with pytest.raises(AnsibleError, match="no_log option nope is not documented"):
        argument_spec_for("torchrun_report", no_log=("nope",))


def test_a_module_documented_by_fragments_only():
    # instance_info has no options of its own: every one comes from its doc fragments
    spec = argument_spec_for("instance_info")
    assert spec["cluster"]["required"] is True and spec["cluster"]["aliases"] == ["name"]
    assert "region" in spec and "count" not in spec


def test_unknown_module():
    with pytest.raises(Exception, match="was not found"):
        argument_spec_for("no_such_module")
