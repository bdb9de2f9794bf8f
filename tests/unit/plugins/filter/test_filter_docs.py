"""Every filter shows its own documentation in ansible-doc: its own name, and one option per argument it takes
(the first argument is ``_input``). A filter file that holds several filters keeps each one's docs in
``plugins/filter/<filter>.yml``; a DOCUMENTATION block inside such a file would be shown for all of them."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess

import pytest

from conftest import ROOT, VENV_BIN, ansible_env

FILTER_DIR = os.path.join(ROOT, "plugins", "filter")


def _filters():
    """(filter name, function) for every filter every FilterModule of the collection registers."""
    found = []
    for name in sorted(os.listdir(FILTER_DIR)):
        if not name.endswith(".py") or name.startswith("_"):
            continue
        module = importlib.import_module("ansible_collections.aiinfra.gpu_cluster.plugins.filter." + name[:-3])
        for fname, func in sorted(module.FilterModule().filters().items()):
            found.append((fname, func))
    return found


FILTERS = _filters()


def _arguments(func):
    """The filter's arguments after its input, as ansible-doc options."""
    params = list(inspect.signature(inspect.unwrap(func)).parameters.values())
    # *args / **kwargs would hide arguments from this check: a filter names every argument it takes
    assert not [p for p in params if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)], (func, params)
    return sorted(p.name for p in params[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


@pytest.fixture(scope="module")
def docs():
    names = ["aiinfra.gpu_cluster." + name for name, _func in FILTERS]
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-doc"), "-t", "filter", "--json"] + names, cwd=ROOT,
                          env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_collection_has_filters():
    assert len(FILTERS) >= 12, [name for name, _f in FILTERS]


@pytest.mark.parametrize("name,func", FILTERS, ids=[name for name, _f in FILTERS])
def test_each_filter_shows_its_own_doc(docs, name, func):
    entry = docs.get("aiinfra.gpu_cluster." + name)
    assert entry is not None, sorted(docs)
    doc = entry["doc"]
    assert doc["name"] == name, "ansible-doc shows %s's documentation for %s (%s)" % (doc["name"], name, doc["filename"])
    assert os.path.basename(doc["filename"]) in (name + ".yml", name + ".py"), doc["filename"]
    options = doc.get("options") or {}
    assert "_input" in options and options["_input"].get("description"), options
    assert sorted(k for k in options if k != "_input") == _arguments(func)
    for option, spec in options.items():
        assert spec.get("description") and spec.get("type"), (option, spec)
    assert entry.get("examples") and name in entry["examples"], "no example that uses %s" % name
    assert entry.get("return", {}).get("_value"), "no RETURN for %s" % name
