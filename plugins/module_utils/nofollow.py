# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root's operations on paths that an unprivileged user (a training job) can write, without following its links.

A directory the job owns is the job's to fill with symbolic links: root must never follow one of them. Every
helper here opens a path one component at a time from ``/`` (``openat`` with ``O_NOFOLLOW``) and works on file
descriptors from there on (``fchown``, ``fchmod``, ``renameat``, ``fwalk``). A symbolic link on the way is
followed only when nobody but root could have planted it: the link is root's and so is its directory, which
nobody else may write (``/var/run -> /run`` and the like). Anything else fails with :class:`UnsafePath`, naming
the path.

:func:`run_as` runs a function as another user (a forked child with that user's ids), for what is simpler done
with the job's own rights (restoring checkpoints into its directory, packing its outputs).
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import stat
import uuid

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
MAX_LINKS = 32


class UnsafePath(OSError):
    """A path root refuses to use: a link someone other than root could have planted, or a path escaping its tree."""

    def __str__(self):
        return "%s: %s" % (self.filename, self.strerror)


def _trusted(st):
    """A directory (or link) only root can change."""
    return st.st_uid == 0 and not (stat.S_ISDIR(st.st_mode) and st.st_mode & 0o022)


def open_dir(path, create=False, mode=0o755):
    """A file descriptor of the directory ``path`` (absolute), opened without following an untrusted link.

    With ``create``, missing directories are made (root's, ``mode``). The caller closes the descriptor.
    """
    if not os.path.isabs(path):
        raise UnsafePath(errno.EINVAL, "not an absolute path", path)
    todo = [p for p in path.split("/") if p not in ("", ".")]
    fd = os.open("/", _DIR_FLAGS)
    done = []
    links = 0
    try:
        while todo:
            name = todo.pop(0)
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise
                st = os.lstat(name, dir_fd=fd)
                where = "/" + "/".join(done + [name])
                if not stat.S_ISLNK(st.st_mode):
                    raise UnsafePath(errno.ENOTDIR, "not a directory", where)
                if not (_trusted(st) and _trusted(os.fstat(fd))):
                    raise UnsafePath(errno.ELOOP, "a symbolic link that a user other than root could have made "
                                                  "(root does not follow it)", where)
                links += 1
                if links > MAX_LINKS:
                    raise UnsafePath(errno.ELOOP, "too many symbolic links", where)
                target = os.readlink(name, dir_fd=fd)
                todo = [p for p in target.split("/") if p not in ("", ".")] + todo
                if target.startswith("/"):
                    os.close(fd)
                    fd, done = os.open("/", _DIR_FLAGS), []
                continue
            os.close(fd)
            fd = nfd
            if name == "..":
                done = done[:-1]
            else:
                done.append(name)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _split(path):
    path = os.path.normpath(path)
    directory, name = os.path.split(path)
    if not name or name in (".", ".."):
        raise UnsafePath(errno.EINVAL, "not a file name", path)
    return directory, name


def make_dir(path, owner=None, mode=0o755):
    """Make the directory ``path`` (and missing parents, root's) unless it is there; give it to ``owner`` (a pwd
    entry) and ``mode``. A link planted in its place, or on the way, is refused, never followed."""
    fd = open_dir(path, create=True, mode=mode)
    try:
        st = os.fstat(fd)
        if owner is not None and (st.st_uid, st.st_gid) != (owner.pw_uid, owner.pw_gid):
            os.fchown(fd, owner.pw_uid, owner.pw_gid)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def write_file(path, data, mode=0o644, owner=None):
    """Write ``data`` (bytes or text) to ``path``: a fresh temporary file in the same directory (``O_EXCL``: never an
    existing file or link), then renamed over the name (a link there is replaced, not followed)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory, name = _split(path)
    dfd = open_dir(directory)
    tmp = ".%s.aiinfra-%s" % (name, uuid.uuid4().hex[:12])
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                     0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if owner is not None:
                    os.fchown(handle.fileno(), owner.pw_uid, owner.pw_gid)
                os.fchmod(handle.fileno(), mode)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
    finally:
        os.close(dfd)


def read_file(path):
    """The bytes of the regular file ``path``, or None when there is none (a link there is not followed)."""
    directory, name = _split(path)
    try:
        dfd = open_dir(directory)
    except (FileNotFoundError, UnsafePath):
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read()


def unlink(path):
    """Remove the entry ``path`` (a link is removed itself); nothing there is fine."""
    directory, name = _split(path)
    try:
        dfd = open_dir(directory)
    except FileNotFoundError:
        return
    try:
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        pass
    finally:
        os.close(dfd)


def rename(src, dest):
    """Rename an entry within one directory (the entries themselves; links are not followed)."""
    directory, name = _split(src)
    directory2, name2 = _split(dest)
    if directory != directory2:
        raise UnsafePath(errno.EXDEV, "rename within one directory only", dest)
    dfd = open_dir(directory)
    try:
        os.rename(name, name2, src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        os.close(dfd)


def size(path):
    """The size of ``path`` if it is a file of its own (not a link), else None (absent, or a link planted there)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return None if stat.S_ISLNK(st.st_mode) else st.st_size


def exists(path):
    """Whether an entry (of any kind, a link too) is at ``path``, looking without following links."""
    directory, name = _split(path)
    try:
        dfd = open_dir(directory)
    except (FileNotFoundError, UnsafePath):
        return False
    try:
        os.lstat(name, dir_fd=dfd)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(dfd)


def chown_tree(path, owner):
    """Give everything under the directory ``path`` to ``owner`` (``lchown`` of each entry, through directory
    descriptors: a link is given away itself, never what it points to)."""
    fd = open_dir(path)
    try:
        for _root, dirs, files, rootfd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
            for name in dirs + files:
                st = os.lstat(name, dir_fd=rootfd)
                if (st.st_uid, st.st_gid) != (owner.pw_uid, owner.pw_gid):
                    os.chown(name, owner.pw_uid, owner.pw_gid, dir_fd=rootfd, follow_symlinks=False)
    finally:
        os.close(fd)


def inside(path, top):
    """Whether ``path``, every link resolved, is ``top`` or under it (``top`` resolved too)."""
    real, root = os.path.realpath(path), os.path.realpath(top)
    return real == root or real.startswith(root.rstrip("/") + "/")


def no_link_below(path, top):
    """Whether no component of ``path`` below ``top`` is a symbolic link (``top`` itself may be one)."""
    rel = os.path.relpath(path, top)
    if rel == ".":
        return True
    if rel.startswith(".."):
        return False
    current = top
    for part in rel.split(os.sep):
        current = os.path.join(current, part)
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return False
        except FileNotFoundError:
            return True
    return True


def drop_to(user):
    """Become ``user`` (a name or a pwd entry) in this process for good: its groups, gid, uid, HOME."""
    entry = user if isinstance(user, pwd.struct_passwd) else pwd.getpwnam(user)
    if os.getuid() == entry.pw_uid and os.geteuid() == entry.pw_uid:
        return entry
    os.setgroups(os.getgrouplist(entry.pw_name, entry.pw_gid))
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ["HOME"] = entry.pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = entry.pw_name
    return entry


def run_as(user, func, *args, **kwargs):
    """``func(*args, **kwargs)`` as ``user``, in a forked child; its result must be JSON. An exception in the child is
    raised here again as ``RunAsError`` with its message (and its class name)."""
    entry = pwd.getpwnam(user) if not isinstance(user, pwd.struct_passwd) else user
    if os.geteuid() == entry.pw_uid:
        return func(*args, **kwargs)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 0
        try:
            os.close(rfd)
            drop_to(entry)
            try:
                out = {"ok": func(*args, **kwargs)}
            except BaseException as exc:  # everything goes back to the parent
                out = {"error": str(exc), "type": type(exc).__name__}
            data = json.dumps(out).encode("utf-8")
            while data:
                data = data[os.write(wfd, data):]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    chunks = []
    while True:
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(rfd)
    os.waitpid(pid, 0)
    try:
        out = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        raise RunAsError("the process running as %s ended without an answer" % entry.pw_name, "RunAsError")
    if "error" in out:
        raise RunAsError(out["error"], out.get("type"))
    return out["ok"]


class RunAsError(Exception):
    """What went wrong in :func:`run_as`'s child; ``kind`` is the exception's class name there."""

    def __init__(self, message, kind=None):
        Exception.__init__(self, message)
        self.kind = kind
