# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python -m aiinfra_storage pull|push|watch``: the same transfers as the object_sync module, from a shell
or a long-lived unit (the checkpoint uploader beside torchrun).

Credentials never go on the command line: ``--options-file`` (or ``$AIINFRA_STORAGE_OPTIONS_FILE``) names a
JSON file (keep it 0600) with the storage options (``gpu_cluster_storage_options``: s3, gs and az keys), else
``$AIINFRA_STORAGE_OPTIONS_B64`` holds them (base64 of the JSON); unset ones come from the node's own identity.

On the nodes the role aiinfra.gpu_cluster.dataset writes the package's ``__main__.py`` (it only calls ``main``):
a ``module_utils`` file named ``__main__.py`` is refused by Galaxy's importer, so the collection ships this one.

Exit status: 0 done; 1 an error (message and hint on stderr); 3 pull found corrupt objects (skipped).
Each command prints its result as one JSON line; ``watch`` prints one line per round.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import threading

from .base import StorageError, open_store
from . import sync


def _options(path):
    path = path or os.environ.get("AIINFRA_STORAGE_OPTIONS_FILE") or ""
    if not path and os.environ.get("AIINFRA_STORAGE_OPTIONS_B64"):  # the uploader's root-only EnvironmentFile
        try:
            data = json.loads(base64.b64decode(os.environ["AIINFRA_STORAGE_OPTIONS_B64"]).decode("utf-8"))
        except ValueError as exc:
            raise StorageError("AIINFRA_STORAGE_OPTIONS_B64 is not base64 of a JSON object (%s)" % exc.__class__.__name__)
        return data if isinstance(data, dict) else {}
    if not path:
        return {}
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise StorageError("cannot read the storage options file %s: %s" % (path, exc))
    if not isinstance(data, dict):
        raise StorageError("the storage options file %s must hold a JSON object" % path)
    return data


def _shard(text):
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError("write the shard as INDEX/COUNT, e.g. 0/4")
    return index, count


def _parser():
    parser = argparse.ArgumentParser(prog="python -m aiinfra_storage", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--options-file", help="JSON file with the storage options (credentials)")
    parser.add_argument("--workers", type=int, default=8, help="files transferred at once")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pull", help="download URI's objects into DIR")
    p.add_argument("uri")
    p.add_argument("dest")
    p.add_argument("--shard", type=_shard, help="INDEX/COUNT: only this shard of the objects")
    p.add_argument("--require-sha256", action="store_true", help="only objects uploaded with their sha256")
    p.add_argument("--check", action="store_true", help="only say what would be downloaded")
    p.add_argument("--complete-only", action="store_true",
                   help="only files whose NAME.sha256 marker holds their sha256 (the checkpoint completeness rule)")
    for name, help_text in (("push", "upload DIR's stable files to URI"),
                            ("watch", "push DIR to URI every --interval seconds until SIGTERM, then once more")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("src")
        p.add_argument("uri")
        p.add_argument("--stable-seconds", type=float, default=5.0 if name == "watch" else 0.0,
                       help="upload a file only after it is unchanged this long")
        p.add_argument("--manifest", help="where to keep what was uploaded (default: a file in SRC)")
        if name == "push":
            p.add_argument("--check", action="store_true", help="only say what would be uploaded")
        else:
            p.add_argument("--interval", type=float, default=10.0, help="seconds between rounds")
            p.add_argument("--status-file", help="rewritten after every round with the totals (JSON)")
            p.add_argument("--baseline", help="the manifest of the pull that restored SRC: what it brought is not "
                                              "pushed back")
    return parser


def _emit(doc):
    """One JSON line on stdout (the unit's journal, or the caller's pipe)."""
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def _write_status(path, totals):
    tmp = path + sync.TMP_MARK + "status"
    with open(tmp, "w") as handle:
        json.dump(totals, handle)
    os.rename(tmp, path)


def main(argv=None):
    args = _parser().parse_args(argv)
    store = None
    try:
        store, prefix = open_store(args.uri, _options(args.options_file))
        if args.command == "pull":
            res = sync.pull(store, prefix, args.dest, shard=args.shard, require_sha256=args.require_sha256,
                            check_mode=args.check, workers=args.workers, complete_only=args.complete_only)
        elif args.command == "push":
            res = sync.push(store, args.src, prefix, stable_seconds=args.stable_seconds, check_mode=args.check,
                            workers=args.workers, manifest_path=args.manifest)
        else:
            stop, wake = threading.Event(), threading.Event()

            def on_stop(*_args):
                stop.set()
                wake.set()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, on_stop)
            # SIGUSR1 (the spot notice watcher): push what is complete now, not at the next round
            signal.signal(signal.SIGUSR1, lambda *_a: wake.set())

            def on_round(res, totals):
                _emit({"round": res, "totals": dict(totals, uploaded_keys=len(totals["uploaded_keys"]))})
                if args.status_file:
                    _write_status(args.status_file, totals)

            res = sync.watch(store, args.src, prefix, interval=args.interval, stable_seconds=args.stable_seconds,
                             stop=stop, on_round=on_round, workers=args.workers, manifest_path=args.manifest,
                             baseline=args.baseline, wake=wake)
            return 0
        _emit(res)
        if res["failed"]:
            sys.stderr.write("error: %d transfers failed, first: %s\n" % (len(res["failed"]), res["failed"][0]["error"]))
            return 1
        return 3 if res["corrupt"] else 0
    except StorageError as exc:
        sys.stderr.write("error: %s\n" % exc)
        return 1
    finally:
        if store is not None and hasattr(store, "close"):
            store.close()


if __name__ == "__main__":
    raise SystemExit(main())
