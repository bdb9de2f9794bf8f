# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run directory to object storage (``torchrun_report_uri``), from the controller, once the report is written.

An AWX job's controller is an execution environment container: ``runs/<run id>/`` (logs, ``summary.json``,
``summary.txt``, ``loss.png``, outputs) dies with it. The report's last step copies the whole directory to
``<torchrun_report_uri>/<run id>/`` with the storage code the nodes use (``module_utils/_storage``) and the
cluster's storage options (``gpu_cluster_storage_options``).
"""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._storage import sync
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._storage.base import StorageError, open_store


def report_destination(uri, run_id):
    """``<uri>/<run id>/`` (one trailing slash)."""
    return "%s/%s/" % (str(uri).strip().rstrip("/"), run_id)


def publish_run_dir(run_dir, uri, run_id, options=None, workers=8):
    """Upload every file of ``run_dir`` to ``<uri>/<run id>/``. Returns ``{"uri", "files", "bytes", "error"}``:
    ``error`` is None when every file is there (uploaded now or already stored as it is)."""
    dest = report_destination(uri, run_id)
    options = dict((k, v) for k, v in (options or {}).items() if v not in (None, ""))
    out = {"uri": dest, "files": 0, "bytes": 0, "error": None}
    store = None
    try:
        store, prefix = open_store(dest, options)
        # (the push's own manifest, .aiinfra-*, stays in the run directory and is never uploaded)
        res = sync.push(store, run_dir, prefix, workers=workers)
    except (StorageError, OSError) as exc:
        out["error"] = str(exc)
        return out
    finally:
        if store is not None:
            store.close()
    out["files"] = len(res["transferred"]) + len(res["present"])
    out["bytes"] = res["bytes"]
    if res["failed"]:
        out["error"] = "%d of %d files failed; first: %s: %s" % (
            len(res["failed"]), len(res["failed"]) + out["files"], res["failed"][0]["key"], res["failed"][0]["error"])
    return out
