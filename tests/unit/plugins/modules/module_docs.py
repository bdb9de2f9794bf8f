"""What ``ansible-doc -t module`` shows for a module of the collection (through the project's venv), as JSON and
as the text people read."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import ROOT, VENV_BIN, ansible_env

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.argspec import argument_spec_for


def ansible_doc(name, *flags):
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-doc"), "-t", "module"] + list(flags)
                          + ["aiinfra.gpu_cluster." + name], cwd=ROOT, env=ansible_env({"COLUMNS": "200"}),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
    return proc.stdout


def check_action_doc_stub(name):
    """The doc stub of action NAME renders, documents every option its action takes (with a description and a
    type) and what it returns, and has an example that uses it. Returns (the JSON entry, the text)."""
    entry = json.loads(ansible_doc(name, "--json"))["aiinfra.gpu_cluster." + name]
    doc = entry["doc"]
    assert doc["module"] == name and doc.get("short_description")
    assert doc.get("attributes", {}).get("action", {}).get("support") == "full"  # an action plugin does the work
    options = doc.get("options") or {}
    assert sorted(options) == sorted(argument_spec_for(name))
    for option, spec in options.items():
        assert spec.get("description") and spec.get("type"), (option, spec)
    assert entry.get("return"), "no RETURN"
    assert "aiinfra.gpu_cluster." + name + ":" in (entry.get("examples") or ""), "no example that uses it"
    text = ansible_doc(name)
    assert "aiinfra.gpu_cluster.%s" % name in text.splitlines()[0].lower()  # ansible-core 2.16 shows it upper-case
    for option in options:
        assert option in text, option
    return entry, text
