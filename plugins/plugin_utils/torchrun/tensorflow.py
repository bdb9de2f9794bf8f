# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan's part for the job's framework (``torchrun_framework``): pytorch (torchrun, the default) or tensorflow
(one ``python SCRIPT`` per node under ``TF_CONFIG``, its workers on ``torchrun_tf_worker_port``). Checked with the
other settings, before anything starts."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.tensorflow import (
    DEFAULT_TF_PYTHON, FRAMEWORKS, worker_address)

DEFAULT_WORKER_PORT = 29410


def framework_of(settings):
    """The framework as typed (a survey may give " TensorFlow "): lower case, trimmed; empty means pytorch."""
    return str(settings.get("framework") or "pytorch").strip().lower()


def check_framework(settings):
    """``(clean values, problems)`` of the framework settings; a problem names the variable and its value."""
    framework = framework_of(settings)
    clean = {"framework": framework}
    if framework not in FRAMEWORKS:
        return clean, ["unknown framework %r: torchrun_framework (gpu_cluster_framework in playbooks/train.yml) must "
                       "be %s" % (settings.get("framework"), " or ".join(FRAMEWORKS))]
    if framework != "tensorflow":
        return clean, []
    errors = []
    port = settings.get("tf_worker_port", DEFAULT_WORKER_PORT)
    try:
        number = int(str(port).strip())
    except (TypeError, ValueError):
        number = 0
    if isinstance(port, bool) or not 1 <= number <= 65535:
        errors.append("torchrun_tf_worker_port must be a number from 1 to 65535 (got %r)" % (port,))
    clean["tf_worker_port"] = number
    python = str(settings.get("tf_python") or DEFAULT_TF_PYTHON).strip()
    if not python.startswith("/"):
        errors.append("torchrun_tf_python must be an absolute path, the TensorFlow virtualenv's python (got %r)"
                      % (settings.get("tf_python"),))
    clean["tf_python"] = python
    if settings.get("docker_image"):
        errors.append("torchrun_docker_image: a TensorFlow job (torchrun_framework=tensorflow) runs in the nodes' "
                      "TensorFlow virtualenv; Docker mode is for torchrun jobs (leave torchrun_docker_image empty)")
    try:
        restarts = int(str(settings.get("max_restarts") or 0).strip())
    except ValueError:
        restarts = 0  # the number check names it
    if restarts > 0:
        errors.append("torchrun_max_restarts restarts torchrun's worker group; a TensorFlow job has none (got %r; "
                      "torchrun_max_recoveries replaces lost nodes and resumes the job)"
                      % (settings.get("max_restarts"),))
    nnodes = str(settings.get("nnodes") or "").strip()
    if nnodes and not nnodes.isdigit():
        errors.append("torchrun_nnodes %r: a TensorFlow cluster has a fixed size (leave it empty: every node)"
                      % (settings.get("nnodes"),))
    return clean, errors


def spec_fields(settings):
    """The launch spec's framework fields (every node's the same)."""
    if settings.get("framework") != "tensorflow":
        return {"framework": "pytorch"}
    return {"framework": "tensorflow", "python": settings["tf_python"], "worker_port": settings["tf_worker_port"]}


def endpoint(settings, rank0_address):
    """What the watch probes from every node: rank 0's worker for TensorFlow; None: the rendezvous endpoint."""
    if settings.get("framework") != "tensorflow":
        return None
    return worker_address(rank0_address, settings["tf_worker_port"])
