# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pull a prefix to a directory, push a directory to a prefix, keep pushing while a job runs (watch).

Pull: plan (what moves and what is already there: a manifest in the destination directory keyed by object
key with etag, size and the local file's mtime), parallel downloads to a temporary name beside the final one,
verify (size, then the sha256 the object was uploaded with, else its ETag: the MD5 of a single-part upload,
recomputed for a multipart one), atomic rename, manifest updated only for verified files. A corrupt object is
skipped and reported, never left under its final name. Push: only files that are stable (unchanged for
``stable_seconds``) and not yet stored as they are now; each object carries its sha256 as metadata.

Links: push uploads regular files only (a symbolic link is skipped, never followed out of the tree); pull never
writes through a symbolic link below its destination (such an object fails, naming the link).

Checkpoints never go backwards: a push sends only what changed on this node since it was last pushed *or
restored* (``seed_push_manifest``: the push manifest starts from what the pull brought), so a node that merely
restored a file never writes it back over a newer object; each name has a single writer (the node that writes
the file). Conditional writes are not used: not every store this package speaks offers them.

The completeness rule (``complete_only``): a file ``NAME`` is complete when ``NAME.sha256`` (``sha256sum``'s
format, ``HEX  NAME``), written after ``NAME`` was renamed into place, holds its sha256. A pull with
``complete_only`` restores only complete files (and their markers, after them); the others are skipped and named
(``corrupt``, reason ``incomplete: ...``). A push uploads a marker after its file, and holds back a file whose
local marker says otherwise (being rewritten, or torn).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import stat
import tempfile
import time
import zlib

from .base import StorageError

MANIFEST = ".aiinfra-manifest.json"
PUSH_MANIFEST = ".aiinfra-push-manifest.json"
TMP_MARK = ".aiinfra-part-"
MARKER_SUFFIX = ".sha256"
MiB = 1024 * 1024
READ_SIZE = 4 * MiB
# part sizes tried when recomputing a multipart ETag whose uploader is unknown (besides size / parts)
PART_SIZES = [n * MiB for n in (8, 5, 16, 15, 32, 64, 100, 128, 256, 512)]


def shard_of(key, count):
    """The shard (0..count-1) an object belongs to: by a stable hash of its key, so adding objects moves none."""
    return zlib.crc32(key.encode("utf-8")) % count


def _is_ours(name):
    return name in (MANIFEST, PUSH_MANIFEST) or TMP_MARK in name


def relative_path(key, prefix):
    """The path under the destination directory for ``key``, or None for keys that cannot be files."""
    rel = key[len(prefix):]
    if not rel or rel.endswith("/"):
        return None  # a "directory" marker
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or _is_ours(parts[-1]):
        raise StorageError("object %r cannot be stored as a file (empty, '.' or '..' path parts, or a name "
                           "this tool uses itself)" % key)
    return os.path.join(*parts)


def is_marker(rel):
    return rel.endswith(MARKER_SUFFIX) and len(os.path.basename(rel)) > len(MARKER_SUFFIX)


def marker_hex(data):
    """The sha256 a completeness marker holds (its first word), or None."""
    try:
        word = data.decode("ascii", "replace").split()[0].lower()
    except (IndexError, AttributeError):
        return None
    return word if len(word) == 64 and all(c in "0123456789abcdef" for c in word) else None


def link_below(top, rel):
    """The first component of ``rel`` (relative to ``top``) that is a symbolic link, or None."""
    current = top
    parts = rel.split(os.sep)
    for part in parts:
        current = os.path.join(current, part)
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return current
        except FileNotFoundError:
            return None
    return None


def refuse_planted_link(path):
    """A top directory that is a symbolic link someone other than root made is not followed (it could be the job's,
    pointing at what it may not read or write)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode) and st.st_uid != 0:
        raise StorageError("%s is a symbolic link made by a user other than root: not followed" % path)


def load_manifest(path):
    try:
        with open(path) as handle:
            data = json.load(handle)
        return data.get("objects", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_manifest(path, objects, check_mode=False):
    if check_mode:
        return
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + TMP_MARK, dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": 1, "objects": objects}, handle, indent=0, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def file_digests(path, part_size=None):
    """(size, sha256 hex, md5 hex, [md5 digest of each part of part_size]) in one read."""
    sha, md5, parts, size = hashlib.sha256(), hashlib.md5(), [], 0
    part = hashlib.md5() if part_size else None
    in_part = 0
    with open(path, "rb") as handle:
        while True:
            block = handle.read(READ_SIZE if not part_size else min(READ_SIZE, part_size - in_part))
            if not block:
                break
            size += len(block)
            sha.update(block)
            md5.update(block)
            if part is not None:
                part.update(block)
                in_part += len(block)
                if in_part == part_size:
                    parts.append(part.digest())
                    part, in_part = hashlib.md5(), 0
    if part is not None and in_part:
        parts.append(part.digest())
    return size, sha.hexdigest(), md5.hexdigest(), parts


def multipart_etag(part_md5s):
    return "%s-%d" % (hashlib.md5(b"".join(part_md5s)).hexdigest(), len(part_md5s))


def part_size_candidates(size, parts):
    """Part sizes that split ``size`` bytes into exactly ``parts`` parts, the usual ones first."""
    even = -(-size // parts)
    out = []
    for cand in PART_SIZES + [-(-even // MiB) * MiB, even]:
        if cand > 0 and -(-size // cand) == parts and cand not in out:
            out.append(cand)
    return out


def verify(path, info, require_sha256=False, digests=None):
    """Check a downloaded file against the object it came from.

    Returns ``(ok, reason, sha256)``: size first; then the sha256 the object was uploaded with; without one
    (``require_sha256`` false) the ETag: the MD5 for a single-part upload, recomputed for a multipart one.
    ``digests``: the sha256 and md5 of the bytes as they were written (the store hashed them on the way), which
    spares reading the file again; with ``service`` (``{"ok": bool, "reason": str}``) the store's verdict on the
    service's own checksums, used in place of the ETag (stores whose ETag is not an MD5).
    """
    actual = os.path.getsize(path)
    if actual != info.size:
        return False, "size %d, the object has %d" % (actual, info.size), None
    etag = info.etag or ""
    multipart = "-" in etag
    candidates = part_size_candidates(info.size, int(etag.rsplit("-", 1)[1])) if multipart and etag.rsplit(
        "-", 1)[1].isdigit() else []
    if digests and not (candidates and not info.sha256):
        sha, md5, parts = digests["sha256"], digests["md5"], []
    else:
        size, sha, md5, parts = file_digests(path, candidates[0] if candidates and not info.sha256 else None)
    if info.sha256:
        if sha != info.sha256.lower():
            return False, "sha256 %s, the object was uploaded with %s" % (sha, info.sha256), sha
        return True, "sha256", sha
    if require_sha256:
        return False, "the object has no sha256 metadata (it was not uploaded by this collection's push)", sha
    if digests and digests.get("service"):
        # the store compared the service's own checksums (crc32c, Content-MD5, per-range MD5) as it wrote the bytes
        return bool(digests["service"]["ok"]), digests["service"]["reason"], sha
    if not multipart:
        if md5 == etag.lower():
            return True, "md5", sha
        return False, "md5 %s does not match the ETag %s" % (md5, etag), sha
    for index, cand in enumerate(candidates):
        if index:
            parts = file_digests(path, cand)[3]
        if multipart_etag(parts) == etag.lower():
            return True, "multipart etag", sha
    return False, "no part size reproduces the multipart ETag %s" % etag, sha


def _stale_temp_files(dest_dir):
    for root, _dirs, files in os.walk(dest_dir):
        for name in files:
            if TMP_MARK in name:
                yield os.path.join(root, name)


def plan_pull(objects, prefix, dest_dir, manifest, shard=None):
    """Which objects to download and which are already there.

    ``objects``: ObjectInfo under ``prefix``; ``shard``: ``(index, count)`` or None for all.
    Returns ``(to_transfer, present)``: lists of ``(ObjectInfo, relative path)``.
    """
    if shard is not None:
        index, count = int(shard[0]), int(shard[1])
        if count < 1 or not 0 <= index < count:
            raise StorageError("shard %d of %d: the index must be 0..count-1 and the count at least 1" % (index, count))
    to_transfer, present = [], []
    for info in sorted(objects, key=lambda o: o.key):
        rel = relative_path(info.key, prefix)
        if rel is None or (shard is not None and shard_of(info.key, shard[1]) != shard[0]):
            continue
        entry = manifest.get(info.key)
        local = os.path.join(dest_dir, rel)
        if entry and entry.get("etag") == info.etag and entry.get("size") == info.size:
            try:
                st = os.stat(local)
                if stat.S_ISREG(st.st_mode) and st.st_size == info.size and st.st_mtime_ns == entry.get("mtime_ns"):
                    present.append((info, rel))
                    continue
            except OSError:
                pass
        to_transfer.append((info, rel))
    return to_transfer, present


def _result(started, transferred, present, corrupt, failed, nbytes, listed, check_mode, would=None):
    seconds = time.time() - started
    return {
        "transferred": transferred, "present": present, "corrupt": corrupt, "failed": failed,
        "would_transfer": would or [], "bytes": nbytes, "seconds": round(seconds, 3),
        "mb_per_s": round(nbytes / 1e6 / seconds, 2) if seconds > 0 and nbytes else 0.0,
        "listed": listed, "check_mode": check_mode,
        "changed": bool(transferred) or bool(would),
    }


def pull(store, prefix, dest_dir, shard=None, require_sha256=False, check_mode=False, workers=8, complete_only=False):
    """Download the objects under ``prefix`` (this shard of them) into ``dest_dir``; see the module docstring."""
    started = time.time()
    refuse_planted_link(dest_dir)
    store.check()
    objects = store.list(prefix)
    if not check_mode:
        os.makedirs(dest_dir, exist_ok=True)
        for path in _stale_temp_files(dest_dir):
            _unlink(path)
    manifest_path = os.path.join(dest_dir, MANIFEST)
    manifest = load_manifest(manifest_path)
    to_transfer, present = plan_pull(objects, prefix, dest_dir, manifest, shard)
    already = [rel for _info, rel in present]
    if check_mode:
        return _result(started, [], already, [], [], 0, len(objects), True,
                       would=[{"key": i.key, "path": rel, "size": i.size} for i, rel in to_transfer])

    transferred, corrupt, failed, nbytes = [], [], [], [0]

    def one(item, expected=None):
        info, rel = item
        final = os.path.join(dest_dir, rel)
        directory = os.path.dirname(final)
        link = link_below(dest_dir, rel)
        if link:
            raise StorageError("%s is a symbolic link: nothing is written through it" % link)
        os.makedirs(directory, exist_ok=True)
        link = link_below(dest_dir, rel)
        if link:
            raise StorageError("%s is a symbolic link: nothing is written through it" % link)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(final) + TMP_MARK, dir=directory)
        os.close(fd)
        try:
            got, digests = store.download(info.key, tmp, info.size)
            ok, reason, sha = verify(tmp, got, require_sha256, digests)
            if ok and expected is not None and sha != expected:
                ok, reason = False, ("incomplete: its sha256 %s is not the one %s holds (half-written, or written "
                                     "after its marker)" % (sha, os.path.basename(rel) + MARKER_SUFFIX))
            if not ok:
                _unlink(tmp)
                return "corrupt", info, rel, reason, None
            os.chmod(tmp, 0o644)
            os.rename(tmp, final)
            st = os.lstat(final)
            return "ok", got, rel, reason, {"etag": got.etag, "size": got.size, "mtime_ns": st.st_mtime_ns,
                                            "sha256": sha}
        except BaseException:
            _unlink(tmp)
            raise

    def run(items, expected=None):
        with concurrent.futures.ThreadPoolExecutor(max(1, int(workers))) as pool:
            futures = [pool.submit(one, item, (expected or {}).get(item[1])) for item in items]
            done = []
            for future, (info, rel) in zip(futures, items):
                try:
                    outcome, got, rel, reason, entry = future.result()
                except StorageError as exc:
                    failed.append({"key": info.key, "path": rel, "error": str(exc)})
                    continue
                if outcome == "ok":
                    manifest[got.key] = entry
                    transferred.append(rel)
                    nbytes[0] += got.size
                    done.append(rel)
                else:
                    corrupt.append({"key": info.key, "path": rel, "reason": reason})
            return done

    try:
        if not complete_only:
            run(to_transfer)
        else:
            markers = dict((rel, info) for info, rel in to_transfer + present if is_marker(rel))
            data = [(info, rel) for info, rel in to_transfer if not is_marker(rel)]
            expected, wanted, ok_data = {}, [], set(rel for _i, rel in present if not is_marker(rel))
            for info, rel in data:
                marker = markers.get(rel + MARKER_SUFFIX)
                hexsum = _read_marker(store, marker) if marker is not None else None
                if hexsum is None:
                    reason = ("incomplete: no valid %s marker beside it (the completeness rule: write the file under "
                              "a temporary name, rename it, then write NAME%s last)"
                              % (os.path.basename(rel) + MARKER_SUFFIX, MARKER_SUFFIX))
                    corrupt.append({"key": info.key, "path": rel, "reason": reason})
                    continue
                expected[rel] = hexsum
                wanted.append((info, rel))
            ok_data.update(run(wanted, expected))
            # a marker follows its file: only once the file it vouches for is here
            run([(info, rel) for info, rel in to_transfer if is_marker(rel) and rel[:-len(MARKER_SUFFIX)] in ok_data])
            for info, rel in to_transfer:
                if is_marker(rel) and rel[:-len(MARKER_SUFFIX)] not in ok_data:
                    corrupt.append({"key": info.key, "path": rel,
                                    "reason": "incomplete: the file it vouches for was not restored"})
    finally:
        # what was verified so far is recorded even when something else failed
        save_manifest(manifest_path, manifest)
    return _result(started, transferred, already, corrupt, failed, nbytes[0], len(objects), False)


def _read_marker(store, info):
    """The sha256 a marker object holds (downloaded to a private temporary file), or None."""
    directory = tempfile.mkdtemp(prefix="aiinfra-marker-")
    path = os.path.join(directory, "marker")
    try:
        if info.size > 4096:
            return None
        store.download(info.key, path, info.size)
        with open(path, "rb") as handle:
            return marker_hex(handle.read())
    except (StorageError, OSError):
        return None
    finally:
        _unlink(path)
        try:
            os.rmdir(directory)
        except OSError:
            pass


def _local_files(src_dir):
    for root, dirs, files in os.walk(src_dir):
        dirs.sort()
        for name in sorted(files):
            if _is_ours(name):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src_dir)
            yield path, rel.replace(os.sep, "/")


def plan_push(src_dir, prefix, remote, manifest, stable_seconds=0, now=None):
    """Files to upload: ``(to_upload, present, unstable)``, each a list of ``(path, key, stat)``.

    A file is uploaded when it changed since it was last pushed or restored (the manifest): never because the store
    holds something else under its name (a newer object from another node is not overwritten by what this node
    merely restored). A file this node pushed and the store lost is pushed again. Regular files only (a link is
    skipped), never a temporary name (``*.tmp``)."""
    now = time.time() if now is None else now
    to_upload, present, unstable = [], [], []
    for path, rel in _local_files(src_dir):
        try:
            st = os.lstat(path)
        except OSError:
            continue  # removed while we looked
        if not stat.S_ISREG(st.st_mode) or rel.endswith(".tmp"):
            continue
        key = prefix + rel
        if now - st.st_mtime < stable_seconds:
            unstable.append((path, key, st))
            continue
        entry, obj = manifest.get(key), remote.get(key)
        unchanged = bool(entry) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
        if unchanged and (obj is not None or entry.get("origin") == "restored"):
            present.append((path, key, st))
        else:
            to_upload.append((path, key, st))
    return to_upload, present, unstable


def seed_push_manifest(src_dir, prefix, baseline_path, manifest_path):
    """Start a push manifest from what a pull brought (its manifest, ``baseline_path``): the files still as the pull
    left them are recorded as ``restored``, so that a push does not send them back. Returns how many were."""
    pulled = load_manifest(baseline_path)
    manifest = load_manifest(manifest_path)
    seeded = 0
    for key, entry in sorted(pulled.items()):
        if not key.startswith(prefix) or key in manifest:
            continue
        path = os.path.join(src_dir, *key[len(prefix):].split("/"))
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size == entry.get("size") and st.st_mtime_ns == entry.get("mtime_ns"):
            manifest[key] = dict(entry, origin="restored")
            seeded += 1
    save_manifest(manifest_path, manifest)
    return seeded


def _local_marker(path):
    """The sha256 the completeness marker beside ``path`` holds: None without one (a link is no marker)."""
    try:
        fd = os.open(path + MARKER_SUFFIX, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return marker_hex(handle.read(4096)) or ""


def push(store, src_dir, prefix, stable_seconds=0, check_mode=False, workers=8, manifest_path=None):
    """Upload the files of ``src_dir`` that are stable and changed since they were last pushed or restored (a
    completeness marker after its file); see the module docstring."""
    started = time.time()
    refuse_planted_link(src_dir)
    if not os.path.isdir(src_dir):
        raise StorageError("%s is not a directory" % src_dir)
    store.check()
    remote = dict((o.key, o) for o in store.list(prefix))
    manifest_path = manifest_path or os.path.join(src_dir, PUSH_MANIFEST)
    manifest = load_manifest(manifest_path)
    to_upload, present, unstable = plan_push(src_dir, prefix, remote, manifest, stable_seconds)
    already = [k for _p, k, _s in present]
    if check_mode:
        res = _result(started, [], already, [], [], 0, len(remote), True,
                      would=[{"key": k, "path": p, "size": s.st_size} for p, k, s in to_upload])
        res["unstable"] = [k for _p, k, _s in unstable]
        return res

    transferred, failed, changed_meanwhile, nbytes = [], [], [], [0]
    real_top = os.path.realpath(src_dir)

    def one(item):
        path, key, st = item
        real = os.path.realpath(path)
        if not real.startswith(real_top.rstrip("/") + "/") or os.path.islink(path):
            raise StorageError("%s leads out of %s (a symbolic link): not uploaded" % (path, src_dir))
        sha = file_digests(path)[1]
        if _changed(path, st):
            return None
        if not is_marker(path):
            expected = _local_marker(path)
            if expected is not None and expected != sha:
                return None  # its marker vouches for other bytes: being rewritten (or torn); not sent as it is
        got = store.upload(path, key, sha)
        if _changed(path, st):
            return None  # written while uploading: the object's sha256 will not match; the next push sends it again
        return got, {"etag": got.etag, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha,
                     "origin": "pushed"}

    def run(items):
        with concurrent.futures.ThreadPoolExecutor(max(1, int(workers))) as pool:
            futures = [pool.submit(one, item) for item in items]
            for future, (path, key, st) in zip(futures, items):
                try:
                    out = future.result()
                except (StorageError, OSError) as exc:
                    failed.append({"key": key, "path": path, "error": str(exc)})
                    continue
                if out is None:
                    changed_meanwhile.append(key)
                    continue
                manifest[key] = out[1]
                transferred.append(key)
                nbytes[0] += st.st_size

    try:
        # a completeness marker goes after its file (a marker whose file was held back waits too)
        run([item for item in to_upload if not is_marker(item[1])])
        held = set(changed_meanwhile)
        run([item for item in to_upload if is_marker(item[1]) and item[1][:-len(MARKER_SUFFIX)] not in held])
        changed_meanwhile.extend(k for _p, k, _s in to_upload if is_marker(k) and k[:-len(MARKER_SUFFIX)] in held)
    finally:
        save_manifest(manifest_path, manifest)
    res = _result(started, transferred, already, [], failed, nbytes[0], len(remote), False)
    res["unstable"] = [k for _p, k, _s in unstable] + changed_meanwhile
    return res


def _changed(path, st):
    try:
        now = os.stat(path)
    except OSError:
        return True
    return now.st_size != st.st_size or now.st_mtime_ns != st.st_mtime_ns


def watch(store, src_dir, prefix, interval=10.0, stable_seconds=5.0, stop=None, on_round=None, workers=4,
          manifest_path=None, baseline=None, wake=None):
    """Push ``src_dir`` every ``interval`` seconds until ``stop`` (a threading.Event) is set, then push once more
    with every file counted as stable. ``wake`` (a threading.Event, set by whoever wants a push now: a spot
    notice) cuts the wait short: the next round starts at once (``stop`` must set it too, to end a wait). A failed
    round (the store unreachable for a while) is reported through ``on_round`` and retried at the next one.
    ``baseline``: the manifest of the pull that restored ``src_dir`` (what it brought is not pushed back). Returns
    the totals."""
    totals = {"rounds": 0, "uploaded": 0, "bytes": 0, "errors": 0, "last_error": None, "uploaded_keys": [],
              "restored_not_pushed": 0}
    if baseline:
        try:
            totals["restored_not_pushed"] = seed_push_manifest(
                src_dir, prefix, baseline, manifest_path or os.path.join(src_dir, PUSH_MANIFEST))
        except OSError as exc:
            totals["errors"] += 1
            totals["last_error"] = "cannot start from what was restored: %s" % exc

    def one_round(final):
        try:
            if not os.path.isdir(src_dir):
                res = None
            else:
                res = push(store, src_dir, prefix, stable_seconds=0 if final else stable_seconds,
                           workers=workers, manifest_path=manifest_path)
                totals["uploaded"] += len(res["transferred"])
                totals["bytes"] += res["bytes"]
                totals["uploaded_keys"].extend(res["transferred"])
                if res["failed"]:
                    totals["errors"] += 1
                    totals["last_error"] = res["failed"][0]["error"]
        except (StorageError, OSError) as exc:
            res = {"error": str(exc)}
            totals["errors"] += 1
            totals["last_error"] = str(exc)
        totals["rounds"] += 1
        if on_round:
            on_round(res, dict(totals, final=final))

    while stop is not None and not stop.is_set():
        one_round(False)
        if wake is None:
            stop.wait(interval)
        else:
            wake.wait(interval)
            wake.clear()
    one_round(True)
    return totals
