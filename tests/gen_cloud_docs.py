#!/usr/bin/env python
"""Write (--write) or check (default) plugins/doc_fragments/{aws,azure,gcp,local,cloud_shared}.py from the clouds'
option declarations (plugins/module_utils/_cloud/<cloud>/options.py). Exit 1 when a file differs from what the
declarations give (tests/unit/plugins/module_utils/_cloud/test_cloud_options.py runs the check)."""

from __future__ import annotations

import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):  # lists indented under their key, as the docs are
        return super(_Dumper, self).increase_indent(flow, False)


def dump(data):
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True)


def sources(clouds=None):
    """{path: text} of the doc fragments ``clouds``' declarations give (default every cloud's)."""
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.options import render_fragments
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.providers import CLOUDS
    return dict((os.path.join(ROOT, "plugins", "doc_fragments", stem + ".py"), text)
                for stem, text in render_fragments(clouds or CLOUDS, dump).items())


def main(argv):
    stale = []
    for path, text in sorted(sources().items()):
        current = None
        if os.path.exists(path):
            with open(path) as handle:
                current = handle.read()
        if current == text:
            continue
        if "--write" in argv:
            with open(path, "w") as handle:
                handle.write(text)
            print("wrote %s" % os.path.relpath(path, ROOT))
        else:
            stale.append(os.path.relpath(path, ROOT))
    if stale:
        print("out of date (run python tests/gen_cloud_docs.py --write): %s" % ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, ".collections"))
    sys.exit(main(sys.argv[1:]))
