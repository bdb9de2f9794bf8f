"""The one retry helper and the waiter."""

from __future__ import annotations

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import errors, retry


class Clock(object):
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock, **kw):
    return retry.RetryPolicy(sleep=clock.sleep, clock=clock, rand=lambda: 1.0, **kw)


def flaky(failures, exc):
    calls = {"n": 0}

    def fn():
        calls["n"] += 1
        if calls["n"] <= failures:
            raise exc
        return "ok"
    return fn, calls


def test_transient_errors_are_retried_with_growing_backoff():
    clock = Clock()
    fn, calls = flaky(3, errors.TransientError("throttled"))
    assert retry.call(fn, policy=policy(clock, base=0.5, cap=1.5)) == "ok"
    assert calls["n"] == 4
    assert clock.sleeps == [0.5, 1.0, 1.5]  # capped


@pytest.mark.parametrize("exc", [errors.CapacityError("no capacity"), errors.QuotaError("quota"),
                                 errors.ConfigError("bad"), errors.NotFoundError("gone")])
def test_non_transient_errors_fail_at_once(exc):
    clock = Clock()
    fn, calls = flaky(5, exc)
    with pytest.raises(type(exc)):
        retry.call(fn, policy=policy(clock))
    assert calls["n"] == 1 and clock.sleeps == []


def test_foreign_exceptions_go_through_classify():
    clock = Clock()
    fn, calls = flaky(2, RuntimeError("503 Service Unavailable"))

    def classify(exc):
        return errors.TransientError(str(exc)) if "503" in str(exc) else None

    assert retry.call(fn, classify=classify, policy=policy(clock)) == "ok"
    assert calls["n"] == 3


def test_unclassified_foreign_exception_propagates():
    fn, dummy = flaky(1, KeyError("x"))
    with pytest.raises(KeyError):
        retry.call(fn, classify=lambda exc: None, policy=policy(Clock()))


def test_attempts_and_deadline_bound_retries():
    clock = Clock()
    fn, calls = flaky(100, errors.TransientError("busy"))
    with pytest.raises(errors.TransientError):
        retry.call(fn, policy=policy(clock, attempts=4))
    assert calls["n"] == 4
    clock = Clock()
    fn, calls = flaky(100, errors.TransientError("busy"))
    with pytest.raises(errors.TransientError):
        retry.call(fn, policy=policy(clock, attempts=100, base=1, cap=1, deadline=3.5))
    assert clock.now <= 3.5 and calls["n"] == 4


def test_full_jitter_stays_within_bounds():
    pol = retry.RetryPolicy(base=1, cap=8)
    for attempt in range(1, 10):
        assert 0 <= pol.delay(attempt) <= min(8, 2 ** (attempt - 1))


def test_wait_until_returns_value_and_times_out_with_pending():
    clock = Clock()
    seq = iter([None, None, ["a"]])
    assert retry.wait_until(lambda: next(seq), 10, sleep=clock.sleep, clock=clock) == ["a"]

    clock = Clock()

    def never():
        return None
    never.pending = lambda: "node-1, node-2"
    with pytest.raises(errors.WaitTimeout) as err:
        retry.wait_until(never, 5, what="nodes", sleep=clock.sleep, clock=clock)
    assert "timed out after 5s waiting for nodes" in str(err.value)
    assert "node-1, node-2" in str(err.value)
    assert clock.now <= 5.0 + 1e-9


def test_error_str_and_dict():
    err = errors.QuotaError("vCPU limit reached", hint="Ask for more", code="VcpuLimitExceeded")
    assert str(err) == "vCPU limit reached [VcpuLimitExceeded]. Ask for more"
    assert err.to_dict()["kind"] == "quota"
    assert errors.ERROR_KINDS["capacity"] is errors.CapacityError


def test_retrying_client_counts_attempts_classifies_and_logs_each_retry():
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import TransientError
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.retry import RetryingClient, RetryPolicy

    seen, logged, answers = [], [], [ValueError("throttled"), ValueError("throttled"), "ok"]

    def classify(exc, context):
        seen.append(context)
        return TransientError("%s (%s)" % (exc, context["op"]))

    def fn():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = RetryingClient(classify, RetryPolicy(attempts=5, base=0.0, cap=0.0, sleep=lambda s: None),
                            log=logged.append)
    client.name = "demo"
    assert client.attempt(fn, {"op": "list"}, "list") == "ok"
    assert client.calls == 3 and seen == [{"op": "list"}, {"op": "list"}]
    assert logged[0].startswith("demo list: throttled (list); retry 1")
