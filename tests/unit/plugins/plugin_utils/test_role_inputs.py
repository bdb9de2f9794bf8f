"""plugin_utils/role_inputs.py: role variables typed from what users type (-e, a survey, a vars file)."""

from __future__ import annotations

import os
import re

import pytest

from conftest import ROOT

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.role_inputs import (
    RoleInputError, load_options, typed_inputs)

OPTIONS = {
    "x_args": {"type": "list", "elements": "str", "default": []},
    "x_paths": {"type": "list", "elements": "path", "default": []},
    "x_flag": {"type": "bool", "default": False},
    "x_count": {"type": "int", "default": 1},
    "x_opts": {"type": "dict", "default": {}},
    "x_name": {"type": "str", "default": "auto", "choices": ["auto", "a", "b"]},
    "x_branch": {"type": "str", "default": "auto"},
    "x_home": {"type": "path", "default": "~/venv"},
}


@pytest.mark.parametrize("given, expected", [
    ("--steps 60", ["--steps", "60"]),
    ("--name 'two words' --lr=0.1", ["--name", "two words", "--lr=0.1"]),
    ('["a", "b c"]', ["a", "b c"]),              # written as a list (JSON / YAML flow)
    ("[a, 'b c']", ["a", "b c"]),
    ("", []),
    ("  ", []),
    ("numpy==2.3.* tensorboard>=2,<3", ["numpy==2.3.*", "tensorboard>=2,<3"]),  # commas stay (not Ansible's split)
    (["already", "a list"], ["already", "a list"]),
    (8, ["8"]),
    (None, []),                                  # null: the default
])
def test_lists_are_split_like_a_shell(given, expected):
    assert typed_inputs(OPTIONS, {"x_args": given})["x_args"] == expected


@pytest.mark.parametrize("given, expected", [("true", True), ("no", False), ("yes", True), ("0", False), (1, True),
                                             ("False", False), (True, True)])
def test_booleans_from_strings(given, expected):
    assert typed_inputs(OPTIONS, {"x_flag": given})["x_flag"] is expected


def test_numbers_dicts_and_strings_from_what_users_type():
    typed = typed_inputs(OPTIONS, {"x_count": "8", "x_opts": '{"debug": true, "log-opts": {"max-file": "3"}}',
                                   "x_branch": 580, "x_home": "~/venv", "x_paths": "~/a.pem b.pem"})
    assert typed["x_count"] == 8
    assert typed["x_opts"] == {"debug": True, "log-opts": {"max-file": "3"}}
    assert typed["x_branch"] == "580"
    assert typed["x_home"] == "~/venv" and typed["x_paths"] == ["~/a.pem", "b.pem"]  # paths as typed (node paths)
    assert typed_inputs(OPTIONS, {"x_opts": "debug=true"})["x_opts"] == {"debug": "true"}
    # options not given get their defaults; every option is there
    assert sorted(typed) == sorted(OPTIONS) and typed["x_name"] == "auto" and typed["x_flag"] is False


@pytest.mark.parametrize("values, message", [
    ({"x_args": "--name 'unclosed"},
     "x_args: cannot split \"--name 'unclosed\" like a shell would (No closing quotation); give x_args as a list "
     "(x_args: [first, second]"),
    ({"x_args": {"a": 1}}, "x_args' is of type dict and we were unable to convert to list"),
    ({"x_args": {"a": 1}}, "give x_args as a list (x_args: [first, second], or -e '{\"x_args\": [\"first\", \"second\"]}')"),
    ({"x_flag": "maybe"}, "argument 'x_flag' is of type str and we were unable to convert to bool"),
    ({"x_count": "eight"}, "argument 'x_count' is of type str and we were unable to convert to int"),
    ({"x_opts": "[1, 2]"}, "argument 'x_opts' is of type str and we were unable to convert to dict"),
    ({"x_name": "c"}, "value of x_name must be one of: auto, a, b, got: c"),
])
def test_what_cannot_be_typed_is_refused_naming_the_variable(values, message):
    with pytest.raises(RoleInputError) as err:
        typed_inputs(OPTIONS, values, context="aiinfra.gpu_cluster.x")
    assert str(err.value).startswith("aiinfra.gpu_cluster.x: ")
    # ansible-core 2.16 names the type as "<class 'str'>", 2.19 as "str"
    assert message in re.sub(r"<class '(\w+)'>", r"\1", str(err.value))


def test_every_role_has_its_options_typed_in_vars():
    """Each role reads its variables through <role>_inputs, made by the one lookup, for every entry point."""
    for role in ("preflight", "nvidia_driver", "cuda", "docker", "pytorch", "tensorflow"):
        role_dir = os.path.join(ROOT, "roles", role)
        options = load_options(role_dir)
        assert options and all(name.startswith(role + "_") for name in options)
        with open(os.path.join(role_dir, "vars", "main.yml")) as handle:
            assert "%s_inputs: \"{{ lookup('aiinfra.gpu_cluster.role_inputs', '%s') }}\"" % (role, role) in handle.read()
    with pytest.raises(RoleInputError, match="has no entry point 'nope'"):
        load_options(os.path.join(ROOT, "roles", "docker"), "nope")


@pytest.mark.parametrize("option, value", [
    ({"type": "list", "elements": "str", "no_log": True}, "--token 's3cr3t-VALUE"),
    ({"type": "dict", "no_log": True}, "s3cr3t-VALUE"),
    ({"type": "int", "no_log": True}, "s3cr3t-VALUE"),
])
def test_a_secret_that_cannot_be_typed_is_not_echoed(option, value):
    with pytest.raises(RoleInputError) as err:
        typed_inputs({"x_secret": option}, {"x_secret": value}, context="aiinfra.gpu_cluster.x")
    assert "x_secret" in str(err.value) and "s3cr3t" not in str(err.value)
