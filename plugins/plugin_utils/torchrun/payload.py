# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The program the launch round sends each node: module_utils ``torchrun/runner.py`` and what it imports (their
sources, read once from this collection), a finder that imports them from memory, and this node's arguments.

It goes to the node's Python on standard input (``python3 -I -``, with the task's become), as a pipelined module
does: the secret environment is never on a command line or in a file on the way. Against an AnsiballZ module it
skips the zip, ``ansible.module_utils.basic`` and its argument handling: one interpreter start and the job
manager's own work (the launch round's cost per node, ``benchmarks/bench_launch.py``).
"""

from __future__ import annotations

import base64
import json
import os
import shlex

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import torchrun as _torchrun

PREFIX = "ansible_collections.aiinfra.gpu_cluster.plugins.module_utils"
# the packages on the way (empty but torchrun's own) and the modules: what runner.py imports, all of it
PACKAGES = ("ansible_collections", "ansible_collections.aiinfra", "ansible_collections.aiinfra.gpu_cluster",
            "ansible_collections.aiinfra.gpu_cluster.plugins", PREFIX, PREFIX + ".torchrun")
MODULES = ("nofollow", "torchrun/__init__", "torchrun/layout", "torchrun/spec", "torchrun/command",
           "torchrun/tensorflow", "torchrun/slurm", "torchrun/job", "torchrun/runner")
# the interpreter when the inventory names none (ansible_python_interpreter) and none was discovered: the platform's
# python3 first, as Ansible's discovery has it on the distributions the roles support
PYTHONS = ("/usr/bin/python3", "/usr/libexec/platform-python", "/usr/local/bin/python3", "python3")

BOOTSTRAP = r'''import base64, json, sys
P = json.loads(base64.b64decode(%(payload)r).decode("utf-8"))


class _Sources(object):
    """Imports the collection's module_utils that came with this program, from memory."""

    def find_spec(self, name, path=None, target=None):
        if name not in P["sources"]:
            return None
        import importlib.util
        return importlib.util.spec_from_loader(name, self, is_package=name in P["packages"])

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__name__
        if name in P["packages"]:
            module.__path__ = []
        exec(compile(P["sources"][name], "<aiinfra.gpu_cluster>/%%s.py" %% name.replace(".", "/"), "exec"),
             module.__dict__)


sys.meta_path.insert(0, _Sources())
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.runner import main
main(P["args"])
'''

_SOURCES = {}


def sources():
    """{module name: source} of what the program carries (read once per controller process)."""
    if not _SOURCES:
        root = os.path.dirname(os.path.dirname(os.path.abspath(_torchrun.__file__)))
        found = dict((name, "") for name in PACKAGES)
        for rel in MODULES:
            with open(os.path.join(root, rel + ".py"), "rb") as handle:
                text = handle.read().decode("utf-8")
            name = PREFIX + "." + rel.replace("/", ".")
            found[name[:-len(".__init__")] if name.endswith(".__init__") else name] = text
        _SOURCES.update(found)
    return _SOURCES


def program(args):
    """The Python program (text) that runs ``runner.main(args)`` on a node."""
    payload = json.dumps({"sources": sources(), "packages": list(PACKAGES), "args": args})
    return BOOTSTRAP % {"payload": base64.b64encode(payload.encode("utf-8")).decode("ascii")}


def command(interpreter=None):
    """The shell command that runs the program given on standard input: ``interpreter`` (the host's
    ansible_python_interpreter or the discovered one), else the first of PYTHONS the node has."""
    if interpreter:
        return "%s -I -" % shlex.quote(interpreter)
    tries = " ".join(shlex.quote(p) for p in PYTHONS)
    return ('for p in %s; do if command -v "$p" >/dev/null 2>&1; then exec "$p" -I -; fi; done; '
            'echo "no python3 on this node" >&2; exit 127' % tries)


def parse(rc, out, err):
    """The node's result from what the program printed (its marker line), or a failure saying what went wrong."""
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.runner import MARKER
    for line in reversed(out.splitlines()):
        if line.startswith(MARKER):
            try:
                result = json.loads(line[len(MARKER):])
            except ValueError:
                break
            if isinstance(result, dict):
                return result
            break
    text = (err or out or "").strip()
    return {"failed": True, "rc": rc,
            "msg": "the node's launch program gave no result (rc %s): %s" % (rc, text[-2000:] or "no output")}
