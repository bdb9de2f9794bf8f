# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exit 0 when no process holds the package manager's locks, 1 (naming the holder) otherwise.

apt/dpkg take fcntl locks on their lock files: try each lock without blocking and release it at
once. dnf/yum write pid files: a lock is held while its pid lives. Run as root.
"""

import errno
import fcntl
import glob
import os
import sys

FCNTL_LOCKS = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock",
               "/var/cache/apt/archives/lock", "/var/lib/rpm/.rpm.lock"]
PID_LOCKS = ["/var/run/yum.pid", "/var/cache/dnf/*.pid", "/var/lib/dnf/*.pid", "/run/dnf/*.pid"]


def holder_name(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return "%s (pid %d)" % (handle.read().strip(), pid)
    except (OSError, ValueError):
        return "pid %d" % pid


def fcntl_holder(path):
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None  # no lock file: nobody holds it
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return None
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        return "a process"
    finally:
        os.close(fd)


def pid_holder(pattern):
    for path in glob.glob(pattern):
        try:
            with open(path) as handle:
                pid = int(handle.read().strip() or 0)
        except (OSError, ValueError):
            continue
        if pid and os.path.exists("/proc/%d" % pid):
            return holder_name(pid)
    return None


def main():
    busy = []
    for path in FCNTL_LOCKS:
        who = fcntl_holder(path)
        if who:
            busy.append("%s held by %s" % (path, who))
    for pattern in PID_LOCKS:
        who = pid_holder(pattern)
        if who:
            busy.append("%s held by %s" % (pattern, who))
    if busy:
        print("; ".join(busy))
        return 1
    print("package manager locks are free")
    return 0


if __name__ == "__main__":
    sys.exit(main())
