# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A heartbeat for an action plugin's long call (node creation): while the call runs, one line through Ansible's
display every ``every`` seconds, the first after ``every`` seconds (a quick call prints nothing)."""

from __future__ import annotations

import threading
import time


class Heartbeat(object):
    """Use as ``with Heartbeat(display, "creating 2 local nodes"):``; prints "<what>: still working (30s)"."""

    def __init__(self, display, what, every=15.0):
        self._display = display
        self._what = what
        self._every = float(every)
        self._done = threading.Event()
        self._thread = None
        self._started = None

    def _beat(self):
        while not self._done.wait(self._every):
            try:
                self._display.display("%s: still working (%ds)" % (self._what, time.time() - self._started))
            except Exception:  # pylint: disable=broad-except
                # the display is only a courtesy: the call itself goes on
                return

    def __enter__(self):
        self._started = time.time()
        if self._every > 0:
            self._thread = threading.Thread(target=self._beat, name="aiinfra-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        if self._thread is not None:
            self._thread.join(5)
        return False
