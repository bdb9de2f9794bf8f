# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A TensorFlow job's node command (``torchrun_framework: tensorflow``): one process per node, the TensorFlow
virtualenv's python running the script, with ``TF_CONFIG`` naming every node's worker (``host:port`` in rank order)
and this node's index, what ``tf.distribute.MultiWorkerMirroredStrategy`` reads. The unit, run directory, watch and
report are the torchrun ones."""

from __future__ import annotations

import json

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.layout import SpecError

FRAMEWORKS = ("pytorch", "tensorflow")
DEFAULT_TF_PYTHON = "/opt/aiinfra/tensorflow/bin/python"


def worker_address(address, port):
    """``host:port`` (an IPv6 address in brackets)."""
    address = str(address)
    if ":" in address and not address.startswith("["):
        address = "[%s]" % address
    return "%s:%d" % (address, int(port))


def tf_config(spec):
    """The node's TF_CONFIG: every node's worker in rank order (``rank_hosts`` is in rank order) and this node's
    index (its node rank), as compact JSON."""
    port = int(spec.get("worker_port") or 0)
    if not 1 <= port <= 65535:
        raise SpecError("torchrun_tf_worker_port %r is not a TCP port (1-65535)" % (spec.get("worker_port"),))
    workers = [worker_address(item["address"], port) for item in spec.get("rank_hosts") or []]
    rank = int(spec["node_rank"])
    if not workers or rank >= len(workers):
        raise SpecError("a TensorFlow job needs every node's address in rank order (the plan's rank_hosts); node "
                        "rank %d is not among %d" % (rank, len(workers)))
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}},
                      separators=(",", ":"), sort_keys=True)


def tensorflow_argv(spec):
    """The node's command line: ``<tf python> <script> <args>`` (or ``-m MODULE``), one process."""
    if bool(spec.get("script")) == bool(spec.get("module")):
        raise SpecError("give exactly one of torchrun_script (a file synced to the nodes) and torchrun_module "
                        "(a Python module already installed on the nodes)")
    argv = [spec.get("python") or DEFAULT_TF_PYTHON]
    if spec.get("module"):
        argv += ["-m", spec["module"]]
    else:
        argv.append(spec["script"])
    return argv + [str(a) for a in (spec.get("script_args") or [])]
