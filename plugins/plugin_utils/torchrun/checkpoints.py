# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checkpoint part of a run report (controller side, ``torchrun_checkpoint_uri``).

:func:`gather` takes the play's hostvars after a run: each node's restore before the launch (the ``object_sync``
result, ``_torchrun_restore``), its uploader's state after the last push (``_torchrun_uploader``) and the
uploader's report (``checkpoints.json``, slurped as ``_torchrun_uploaded``). :func:`summarize` turns that into
the summary's ``checkpoints`` entry (totals, what was skipped as corrupt, per node) and :func:`lines` into the
report's lines.
"""

from __future__ import annotations

import base64
import json


def _upload_report(slurped):
    """The uploader's ``checkpoints.json`` from a slurp result; None when there is none (or it is unreadable)."""
    if not isinstance(slurped, dict) or not slurped.get("content") or slurped.get("failed"):
        return None
    try:
        data = json.loads(base64.b64decode(slurped["content"]).decode("utf-8"))
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def gather(hostvars_list):
    """{host: {"restore": ..., "upload": ..., "uploader": ActiveState}} from the play's hostvars."""
    nodes = {}
    for hv in hostvars_list or []:
        restore = hv.get("_torchrun_restore")
        if not isinstance(restore, dict) or restore.get("skipped"):  # the task was skipped
            restore = None
        uploader = hv.get("_torchrun_uploader")
        state = uploader.get("stdout") if isinstance(uploader, dict) else None
        nodes[hv.get("inventory_hostname")] = {
            "restore": None if restore is None else dict(
                (k, restore.get(k)) for k in ("transferred", "present", "corrupt", "failed_transfers", "bytes", "seconds",
                                              "msg", "unreachable") if k in restore),
            "upload": _upload_report(hv.get("_torchrun_uploaded")),
            "uploader": state,
        }
    return nodes


def _count(value):
    return len(value) if isinstance(value, (list, tuple)) else int(value or 0)


def summarize(uri, nodes):
    """The summary's ``checkpoints``: the URI, totals over the nodes, every corrupt object skipped, per node."""
    out = {"uri": uri, "restored_files": 0, "restored_bytes": 0, "corrupt": [], "uploaded_files": 0,
           "uploaded_bytes": 0, "upload_errors": [], "final_push": True, "nodes": {}}
    for host in sorted(nodes or {}):
        node = nodes[host] or {}
        restore, upload = node.get("restore") or {}, node.get("upload")
        row = {"restored": _count(restore.get("transferred")), "restored_bytes": int(restore.get("bytes") or 0),
               "already_there": _count(restore.get("present")), "corrupt": [], "uploaded": 0, "uploaded_bytes": 0,
               "uploaded_keys": [], "final_push": False}
        for item in restore.get("corrupt") or []:
            item = item if isinstance(item, dict) else {"key": str(item)}
            row["corrupt"].append(item.get("path") or item.get("key"))
            out["corrupt"].append(dict(item, host=host))
        if upload is not None:
            keys = upload.get("uploaded_keys") or (upload["uploaded"] if isinstance(upload.get("uploaded"), list)
                                                   else [])
            row.update(uploaded=_count(upload.get("uploaded")), uploaded_bytes=int(upload.get("bytes") or 0),
                       uploaded_keys=list(keys), final_push=bool(upload.get("final")))
            if upload.get("errors"):
                out["upload_errors"].append("%s: %s" % (host, upload.get("last_error") or upload["errors"]))
        if node.get("uploader") in ("active", "activating", "deactivating", "reloading"):
            out["upload_errors"].append("%s: the uploader was still running its last push when the report was "
                                        "written (torchrun_checkpoint_final_timeout)" % host)
        out["final_push"] = out["final_push"] and row["final_push"]
        out["restored_files"] += row["restored"]
        out["restored_bytes"] += row["restored_bytes"]
        out["uploaded_files"] += row["uploaded"]
        out["uploaded_bytes"] += row["uploaded_bytes"]
        out["nodes"][host] = row
    return out


def _mb(nbytes):
    return "%.1f MB" % (nbytes / 1e6)


def lines(checkpoints):
    """The report's lines on checkpoints (empty without them)."""
    if not checkpoints:
        return []
    ckpt = checkpoints
    out = ["  checkpoints %s: restored %d files (%s) before the launch, uploaded %d files (%s)%s" % (
        ckpt["uri"], ckpt["restored_files"], _mb(ckpt["restored_bytes"]), ckpt["uploaded_files"],
        _mb(ckpt["uploaded_bytes"]), ", last push done" if ckpt["final_push"] else ", last push NOT confirmed")]
    if ckpt["corrupt"]:
        out.append("  skipped on restore (corrupt or partial, not used): %s" % ", ".join(
            "%s on %s (%s)" % (c.get("path") or c.get("key"), c["host"], c.get("reason") or "does not verify")
            for c in ckpt["corrupt"]))
    for error in ckpt["upload_errors"]:
        out.append("  checkpoint upload problem: %s" % error)
    return out
