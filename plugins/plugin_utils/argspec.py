# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An action plugin's argument spec, read from its module's DOCUMENTATION (doc fragments included).

The module file (``plugins/modules/NAME.py``) documents the options ``ansible-doc`` shows; the action plugin of the
same name validates its arguments against exactly that, as ``ansible.utils.validate`` does, so the two cannot drift:

    dummy, args = self.validate_argument_spec(argument_spec=argument_spec_for("torchrun_watch"))

tests/unit/plugins/plugin_utils/test_argspec.py checks that every action plugin accepts exactly what its module
documents (an action that runs a module with its arguments: that module's argument spec), and that none spells a
spec itself.

A module's documentation cannot say ``no_log`` (validate-modules refuses the key), so an action names its secret
options: ``argument_spec_for("torchrun_report", no_log=("storage_options",))``; each must be documented.
"""

from __future__ import annotations

import copy
import functools
import importlib
import os

import yaml

from ansible.errors import AnsibleError

COLLECTION = "aiinfra.gpu_cluster"
# the keys of a documented option that are also argument-spec keys; the rest (description, version_added, ...) are
# for readers only
SPEC_KEYS = ("type", "required", "default", "choices", "elements", "aliases", "no_log")


def option_spec(doc_options):
    """The argument spec of a DOCUMENTATION ``options`` mapping (suboptions become ``options``)."""
    spec = {}
    for name, doc in (doc_options or {}).items():
        entry = dict((key, doc[key]) for key in SPEC_KEYS if key in doc)
        if doc.get("suboptions"):
            entry["options"] = option_spec(doc["suboptions"])
        spec[name] = entry
    return spec


def _fragment_options(name, source):
    """The options of doc fragment ``aiinfra.gpu_cluster.NAME[.VAR]`` (this collection's own fragments only)."""
    prefix = COLLECTION + "."
    if not name.startswith(prefix):
        raise AnsibleError("%s: doc fragment %s is not this collection's" % (source, name))
    parts = name[len(prefix):].split(".")
    attribute = parts[1].upper() if len(parts) > 1 else "DOCUMENTATION"
    module = importlib.import_module("ansible_collections.aiinfra.gpu_cluster.plugins.doc_fragments." + parts[0])
    return (yaml.safe_load(getattr(module.ModuleDocFragment, attribute)) or {}).get("options") or {}


@functools.lru_cache(maxsize=None)
def _documented_options(name):
    # read as a file, not imported: a module's DOCUMENTATION is YAML in a string; its fragments are merged the way
    # ansible-doc merges them (the module's own option wins)
    from ansible.parsing.plugin_docs import read_docstring

    # the module of the same name, in this very collection (the one this file came with)
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "modules", name + ".py")
    if not os.path.isfile(path):
        raise AnsibleError("%s: its module documentation (plugins/modules/%s.py) was not found" % (name, name))
    doc = read_docstring(path).get("doc") or {}
    fragments = doc.get("extends_documentation_fragment") or []
    if "options" not in doc and not fragments:
        raise AnsibleError("%s: its module's DOCUMENTATION has no options" % name)
    options = {}
    for fragment in [fragments] if isinstance(fragments, str) else fragments:
        options.update(_fragment_options(fragment, name))
    options.update(doc.get("options") or {})
    return options


def argument_spec_for(name, no_log=()):
    """The argument spec of action ``name`` of this collection, from ``plugins/modules/NAME.py``'s DOCUMENTATION
    (a fresh copy: validation may not change the cached one); the options named in ``no_log`` get ``no_log``."""
    spec = copy.deepcopy(option_spec(_documented_options(name)))
    for option in no_log:
        if option not in spec:
            raise AnsibleError("%s: no_log option %s is not documented" % (name, option))
        spec[option]["no_log"] = True
    return spec
