# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What interrupting the play (Ctrl-C: SIGINT, or SIGTERM) does to a run while torchrun_watch follows it.

ansible-playbook passes the signal on to its worker processes; a worker's own handler ends it at once (it signals
its process group and exits), so nothing of the task would run. While the watch runs, :func:`interruptible` puts
a handler of its own in place that raises :class:`Interrupted` in the watch's loop instead; the watch then stops
the run (:func:`stop_commands`: a Slurm run's job is ``scancel``-led on the controller node, a direct launch's
unit is stopped on every node), holding further signals meanwhile (ansible-playbook sends SIGTERM to its workers
as it cleans up, and waits for them to end), then hands the signal to the worker's own handler as if it had just
arrived. Outside an Ansible worker's main thread (where signal handlers cannot be set) nothing changes.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import threading
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The play was interrupted (``signum``) while the watch ran."""

    def __init__(self, signum):
        super(Interrupted, self).__init__("interrupted by %s" % signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def interruptible():
    """While in the block, SIGINT and SIGTERM raise :class:`Interrupted` (in the main thread), once: from then on
    both are ignored until :func:`held` or the block's end. Yields the handlers it replaced, or None where it could
    not replace them (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return

    def raise_interrupted(signum, frame):
        # once: a second signal (ansible-playbook's SIGTERM to its workers as it cleans up comes right after its
        # SIGINT) must not interrupt the stop that the first one starts; held() takes over from here
        for other in SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(signum)
    previous = {}
    try:
        for signum in SIGNALS:
            previous[signum] = signal.signal(signum, raise_interrupted)
        yield previous
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def held(restore=None):
    """While in the block, SIGINT and SIGTERM are noted, not acted on (the run is being stopped); then the handlers
    of ``restore`` (signal -> handler: those :func:`interruptible` replaced) are put back, else those it found.
    Yields the list of the signals that came."""
    came = []
    previous = {}
    if threading.current_thread() is not threading.main_thread():
        yield came
        return
    try:
        for signum in SIGNALS:
            previous[signum] = signal.signal(signum, lambda s, f: came.append(s))
        yield came
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, (restore or {}).get(signum, handler))


def redeliver(signum, previous):
    """Hand ``signum`` to the handler that was in place before :func:`interruptible` (the worker's own: it ends
    the process), as if the signal had just come."""
    handler = (previous or {}).get(signum)
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_IGN:
        return
    else:
        os.kill(os.getpid(), signum)


def stop_commands(hosts, unit, slurm_job_id=None, slurm_host=None):
    """host -> the command (run as root) that stops the run there: ``scancel`` of the run's Slurm job on the Slurm
    controller node (Slurm stops its step on every node), else the run's unit on every node (``--no-block``: the
    unit's own stop timeout applies on the node, the play does not wait for it)."""
    if slurm_job_id:
        return {slurm_host: "scancel %s" % shlex.quote(str(slurm_job_id))}
    return dict((host, "systemctl stop --no-block %s" % shlex.quote(unit)) for host in hosts)


def run_everywhere(commands, execute, timeout=30.0):
    """Run ``commands`` (host -> command) at once, each by ``execute(host, command)`` -> (rc, out, err) in a thread
    of its own; wait ``timeout`` seconds at most. Returns host -> (ok, what it said)."""
    boxes = dict((host, {}) for host in commands)

    def one(host, command, box):
        try:
            rc, out, err = execute(host, command)
            box["result"] = (rc == 0, (err or out or "").strip())
        except Exception as exc:  # a node that cannot be reached: said, not raised
            box["result"] = (False, str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
    threads = []
    for host, command in commands.items():
        thread = threading.Thread(target=one, args=(host, command, boxes[host]), name="torchrun-stop-%s" % host)
        thread.daemon = True
        thread.start()
        threads.append(thread)
    deadline = time.time() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.time()))
    return dict((host, box.get("result", (False, "no answer within %d s" % timeout))) for host, box in boxes.items())
