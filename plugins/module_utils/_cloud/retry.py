# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one retry helper.

Providers do not write retry loops: they classify errors (``classify``
turns an SDK exception into a :class:`CloudError`) and call :func:`call`.
Only :class:`TransientError` is retried, with full-jitter exponential backoff
bounded both by an attempt count and by a deadline.
"""

from __future__ import annotations

import random
import time

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CloudError, TransientError, WaitTimeout


class RetryPolicy(object):
    """Full-jitter exponential backoff (AWS Architecture Blog, 'Exponential Backoff And Jitter')."""

    def __init__(self, attempts=8, base=0.2, cap=10.0, deadline=None, sleep=time.sleep, rand=random.random,
                 clock=time.monotonic):
        self.attempts = attempts
        self.base = base
        self.cap = cap
        self.deadline = deadline
        self.sleep = sleep
        self.rand = rand
        self.clock = clock

    def delay(self, attempt):
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return self.rand() * min(self.cap, self.base * (2 ** (attempt - 1)))


def call(fn, classify=None, policy=None, on_retry=None):
    """Call ``fn()``; retry while it fails with a transient error.

    ``classify(exc)`` maps a foreign exception to a :class:`CloudError` (or returns
    ``None`` to let it propagate untouched). Non-transient classified errors are
    raised at once. When attempts or the deadline run out, the last transient
    error is raised.
    """
    policy = policy or RetryPolicy()
    start = policy.clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except CloudError as exc:
            err = exc
        except Exception as exc:  # pylint: disable=broad-except
            err = classify(exc) if classify else None
            if err is None:
                raise
        if not isinstance(err, TransientError):
            raise err
        if attempt >= policy.attempts:
            raise err
        # a server that says when to come back (HTTP Retry-After) is believed
        wait = max(policy.delay(attempt), getattr(err, "retry_after", 0) or 0)
        if policy.deadline is not None and policy.clock() - start + wait > policy.deadline:
            raise err
        if on_retry:
            on_retry(attempt, err, wait)
        policy.sleep(wait)


def wait_until(predicate, timeout, interval=1.0, what="resources", sleep=time.sleep, clock=time.monotonic,
               max_interval=10.0):
    """Poll ``predicate()`` until it returns a truthy value, or raise :class:`WaitTimeout`.

    The interval grows by half each poll up to ``max_interval``; the last value
    the predicate returned is put in the error so the user sees what was missing.
    """
    deadline = clock() + timeout
    last = None
    while True:
        result = predicate()
        if result:
            return result
        last = result
        now = clock()
        if now >= deadline:
            detail = getattr(predicate, "pending", None)
            pending = detail() if callable(detail) else last
            raise WaitTimeout(
                "timed out after %ss waiting for %s" % (timeout, what),
                hint="Still pending: %s. Raise wait_timeout or look at the cloud's console/logs" % (pending,),
            )
        sleep(min(interval, max(0.0, deadline - now)))
        interval = min(max_interval, interval * 1.5)


class RetryingClient(object):
    """One cloud's API calls, each through :func:`call`: every attempt counted (``calls``), a failure classified by
    the cloud's ``classify(exc, context)``, every retry logged. The one retry layer of a cloud (as amazon.aws's
    ``RetryingBotoClientWrapper``): a provider calls its cloud only through its wrapper and never retries itself.
    Each cloud's subclass says how one call is made (:meth:`attempt`'s ``fn``) and what its context holds."""

    name = "cloud"

    def __init__(self, classify, policy, log=None):
        self.classify = classify
        self.policy = policy
        self.log = log or (lambda msg: None)
        self.calls = 0

    def attempt(self, fn, context=None, what=""):
        """``fn()`` until it succeeds or fails for good: its answer, or the classified error."""
        def once():
            self.calls += 1
            return fn()

        def on_retry(attempt, err, wait):
            self.log("%s%s: %s; retry %d in %.2fs" % (self.name, " %s" % what if what else "", err, attempt, wait))

        return call(once, classify=lambda exc: self.classify(exc, context or {}), policy=self.policy,
                    on_retry=on_retry)
