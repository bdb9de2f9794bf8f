# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job's verdict, taken once per poll round on the controller over every node's latest state.

:class:`NodeState` is what the poller knows of one node; :func:`decide` turns all of them into a
:class:`Verdict`: still running, succeeded, or failed, and which node failed first and why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import exit_code

FAILED_PHASES = ("failed", "lost", "timeout")


@dataclass
class NodeState:
    """One node of a run as the controller last saw it."""

    host: str
    node_rank: int
    t: float = 0.0                  # when the node last answered a poll (0: not yet)
    asked: float = 0.0              # when the first poll was sent (a node that never answered is timed from here)
    active: bool = False            # its unit is running
    started: bool = False           # the run was launched there (its meta.json exists)
    started_at: float = None
    nproc_per_node: int = None
    exit: dict = None               # the unit's exit record: result, code, status, time
    unit_state: str = "unknown"
    lost: str = None                # why the node counts as lost (no answer, connection refused ...)
    lost_at: float = None
    probe: dict = None              # a TCP probe of the rendezvous endpoint from the node
    preempted: dict = None          # its spot notice (source, time, detail), once a poll saw one
    timeout: int = 0                # torchrun_timeout, for the message
    polls: int = 0
    log: dict = field(default_factory=dict)  # LogState.snapshot() of what its log said so far

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        names = set(f.name for f in fields(cls))
        return cls(**dict((k, v) for k, v in (data or {}).items() if k in names))

    @property
    def phase(self):
        """running, succeeded, failed, timeout, lost or pending."""
        if self.lost:
            return "lost"
        if self.active:
            return "running"
        if self.exit:
            if self.exit.get("result") == "timeout":
                return "timeout"
            if self.exit.get("result") == "success" and exit_code(self.exit) == 0:
                return "succeeded"
            return "failed"
        if self.started and self.t:
            # the unit is gone and left no exit record: killed with its node, or stopped from outside
            return "failed"
        return "pending"

    def failed_at(self, now):
        if self.lost:
            return float(self.lost_at or self.t or now)
        return float((self.exit or {}).get("time") or self.t or now)


@dataclass
class Verdict:
    done: bool = False
    status: str = "running"         # running, succeeded, failed
    reason: str = None              # rendezvous, node, timeout
    failed: list = field(default_factory=list)   # hosts, the first cause first
    preempted: list = field(default_factory=list)  # the failed hosts that had a spot notice: taken back, not broken
    message: str = ""
    phases: dict = field(default_factory=dict)   # host -> phase

    def to_dict(self):
        return asdict(self)


def describe(state):
    """``(who, why)`` for a node that failed."""
    who = "%s (node rank %s)" % (state.host, state.node_rank)
    phase = state.phase
    if state.preempted and (phase == "lost" or ended_from_outside(state)):
        notice = state.preempted
        return who, "was preempted (spot notice from %s: %s)" % (notice.get("source", "?"), notice.get("detail", "?"))
    if phase == "lost":
        return who, "stopped answering: %s" % (state.lost or "unreachable")
    if phase == "timeout":
        return who, "ran past torchrun_timeout (%ss) and was stopped" % (state.timeout or "?")
    if state.exit:
        if state.exit.get("shutdown"):
            return who, "its node shut down while the job ran (torchrun was stopped with it, exit code %s)" % (
                exit_code(state.exit))
        signal = (state.log or {}).get("death_signal")
        if state.exit.get("code") == "exited" and signal:
            return who, "torchrun was stopped from outside (its agent received signal %s; exit code %s)" % (
                signal, exit_code(state.exit))
        if state.exit.get("code") == "exited":
            return who, "torchrun ended with exit code %s" % exit_code(state.exit)
        return who, "torchrun was killed by SIG%s" % state.exit.get("status")
    return who, "its torchrun unit vanished without an exit record (the node shut down, or the unit was killed)"


def ended_from_outside(state):
    """Its torchrun was signalled (killed, dumped, or its agent said it received a signal and exited), its unit was
    stopped by its node's shutdown, or its unit is gone with no exit record (the node went down)."""
    exit_info = state.exit
    return (not exit_info or exit_info.get("code") in ("killed", "dumped") or bool(exit_info.get("shutdown"))
            or bool((state.log or {}).get("death_signal")))


def decide(states, now, started, settings):
    """The verdict over all nodes.

    ``states``: host -> :class:`NodeState` of every node that must take part; ``settings``: node_timeout,
    rdzv_timeout, timeout and settle (how long nodes that were running get to answer after a first failure;
    node_timeout / 2), in seconds.
    """
    node_timeout = float(settings.get("node_timeout") or 20)
    order = sorted(states, key=lambda h: states[h].node_rank)
    phases, stale = {}, {}
    for host in order:
        state = states[host]
        phase = state.phase
        age = now - float(state.t or state.asked or started)
        if phase in ("running", "pending") and age > node_timeout:
            stale[host] = "no answer for %.0fs" % age
            phase = "lost"
        phases[host] = phase
    verdict = Verdict(phases=phases)

    bad = [h for h in order if phases[h] in FAILED_PHASES]
    if bad:
        # When a node dies, its peers' workers fail a moment later ("connection closed by peer"), often before
        # the poller gives up on the dead node. So before naming a cause, every node that is still running
        # gets a short while to answer after the first failure; one that stays silent is the likely cause
        # and is named first, as lost.
        # A node whose torchrun was ended from outside (signalled, or its unit gone: the node shutting down) is
        # itself the likely cause: then a node that is merely slow to answer (a loaded controller, a busy node) is
        # not taken for a lost one before node_timeout.
        outside = [h for h in bad if phases[h] != "lost" and ended_from_outside(states[h])]
        failed_at = min(states[h].failed_at(now) for h in bad)
        silent = [h for h in order if not outside and phases[h] in ("running", "pending")
                  and float(states[h].t or 0) < failed_at]
        if silent:
            if now - failed_at < float(settings.get("settle") or node_timeout / 2):
                return verdict
            for host in silent:
                phases[host] = "lost"
                stale[host] = "no answer since its peers failed %.0fs ago" % (now - failed_at)
            bad = silent + bad

        def first(host):
            # a lost node first, then one whose torchrun was ended from outside (its agent signalled, or its unit
            # gone with no exit record: a node shutting down), then the ones that failed by themselves; in each,
            # the earliest. A node stopped from outside takes longer to record its end than its peers take to
            # fail with "connection closed by peer", so time alone would blame a healthy peer.
            state = states[host]
            if state.preempted:
                # taken back by its cloud: the cause, whatever its peers said first
                return (-1, float(state.preempted.get("time") or now), state.node_rank)
            if phases[host] == "lost":
                return (0, float(state.lost_at or state.t or now), state.node_rank)
            return (1 if ended_from_outside(state) else 2, float((state.exit or {}).get("time") or state.t or now),
                    state.node_rank)
        bad.sort(key=first)
        verdict.done, verdict.status, verdict.failed = True, "failed", bad
        verdict.preempted = [h for h in bad if states[h].preempted]
        rendezvous_done = any(states[h].log.get("joined") or states[h].log.get("ranks") for h in order)
        if not rendezvous_done and all(phases[h] != "succeeded" for h in order):
            # The cause is named first whatever the order the events came in: the node that ended first with an
            # error (``bad`` is sorted so), then the nodes that did not join because of it.
            missing = [h for h in order if not states[h].log.get("attempted")]
            named = [h for h in bad if h in missing] + [h for h in missing if h not in bad]
            verdict.reason = "rendezvous"
            verdict.message = rendezvous_message(states, named or bad, "failed before it completed", stale)
            return verdict
        host = bad[0]
        state = states[host]
        if phases[host] == "lost" and not state.lost:
            state = NodeState.from_dict(dict(state.to_dict(), lost=stale.get(host)))
        who, why = describe(state)
        others = ", ".join("%s (%s)" % (h, phases[h]) for h in bad[1:])
        verdict.reason = "timeout" if phases[host] == "timeout" else "node"
        verdict.message = "%s failed: %s.%s" % (who, why, " Also failed: %s." % others if others else "")
        return verdict

    if all(phases[h] == "succeeded" for h in order):
        verdict.done, verdict.status = True, "succeeded"
        verdict.message = "all %d nodes finished with exit code 0" % len(order)
        return verdict

    elapsed = now - started
    if settings.get("timeout") and elapsed > float(settings["timeout"]) + node_timeout:
        verdict.done, verdict.status, verdict.reason = True, "failed", "timeout"
        verdict.failed = [h for h in order if phases[h] == "running"]
        verdict.message = "the job ran past torchrun_timeout (%ss)" % settings["timeout"]
        return verdict

    if settings.get("rdzv_timeout") and elapsed > float(settings["rdzv_timeout"]):
        # torchrun's agent logs that it joined the rendezvous; a TensorFlow job (no agent) counts as joined once it
        # logs its JSON "joined" event (the example does when its MultiWorkerMirroredStrategy is built, before its
        # first all-reduce)
        joined = [h for h in order if states[h].log.get("joined") or states[h].log.get("ranks")
                  or phases[h] == "succeeded"]
        if len(joined) < len(order):
            missing = [h for h in order if not states[h].log.get("attempted") and phases[h] != "succeeded"]
            waiting = [h for h in order if h not in joined]
            verdict.done, verdict.status, verdict.reason = True, "failed", "rendezvous"
            verdict.failed = missing or waiting
            verdict.message = rendezvous_message(
                states, missing or waiting,
                "did not complete within torchrun_rdzv_timeout (%ds)" % int(float(settings["rdzv_timeout"])))
    return verdict


def rendezvous_message(states, missing, what, stale=None):
    parts = []
    for host in missing:
        state = states[host]
        probe = state.probe
        detail = ""
        if host in (stale or {}) and not state.lost:
            detail = ": stopped answering: %s" % stale[host]
        elif state.phase in FAILED_PHASES:
            detail = ": " + describe(state)[1]
        elif probe and not probe.get("ok"):
            detail = ": cannot reach the rendezvous endpoint %s (%s)" % (probe.get("endpoint"), probe.get("error"))
        elif probe and probe.get("ok"):
            detail = ": reaches %s but its torchrun agent never joined" % probe.get("endpoint")
        parts.append("%s (node rank %s)%s" % (host, state.node_rank, detail))
    return "the rendezvous %s; did not join: %s" % (what, "; ".join(parts) if parts else "none named")
