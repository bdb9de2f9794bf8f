"""plugins/lookup/role_inputs.py in a play: a role's variables typed by its argument_specs (plugin_utils/role_inputs.py
has the typing's own tests)."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import ROOT, VENV_BIN, ansible_env

LOOKUP = "msg={{ lookup('aiinfra.gpu_cluster.role_inputs', %s) }}"


def ansible_debug(terms, extra_vars):
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-m",
                           "debug", "-a", LOOKUP % terms, "-e", json.dumps(extra_vars)], cwd=ROOT,
                          env=ansible_env({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    start = proc.stdout.find("{")
    assert start >= 0, proc.stdout
    result = json.loads(proc.stdout[start:])["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return proc.returncode, result


def test_every_option_of_the_role_typed_from_what_users_type():
    rc, result = ansible_debug("'torchrun'", {"torchrun_script_args": '--steps 60 --name "two words"',
                                              "torchrun_cpu_nproc_per_node": "2", "torchrun_plot": "no"})
    assert rc == 0, result
    typed = result["msg"]
    assert typed["torchrun_script_args"] == ["--steps", "60", "--name", "two words"]
    assert typed["torchrun_cpu_nproc_per_node"] == 2 and typed["torchrun_plot"] is False
    assert "torchrun_run_id" in typed  # every option of the entry point, given or not


def test_a_value_of_the_wrong_type_fails_naming_the_role_and_the_option():
    rc, result = ansible_debug("'torchrun'", {"torchrun_cpu_nproc_per_node": "two"})
    assert rc != 0 and result.get("failed")
    assert "aiinfra.gpu_cluster.torchrun" in result["msg"] and "torchrun_cpu_nproc_per_node" in result["msg"]


def test_one_role_name_only():
    rc, result = ansible_debug("'torchrun', 'pytorch'", {})
    assert rc != 0 and "role_inputs takes one role name" in result["msg"]
