# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reconcile a cluster to a desired node count through any provider.

This is the whole behaviour of the ``instance`` module, kept out of the module
so it can be tested without Ansible: plan, check mode, diff, rollback of what a
failed call created.
"""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import Launch, plan_nodes, sort_nodes
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError


def _summary(nodes, resources=None):
    state = {"count": len(nodes), "nodes": ["%s (rank %d, %s)" % (n.name, n.rank, n.state) for n in sort_nodes(nodes)]}
    if resources is not None:
        state["resources"] = list(resources)
    return state


def check_owner(provider, cluster, nodes, owner, force, what):
    """Refuse to ``what`` (delete, shrink, replace) ``nodes`` another owner made, unless ``force``.

    Nodes without an owner tag (made before owners were recorded) belong to nobody in particular."""
    if force or not owner or not nodes:
        return
    mine = provider.owner_value(owner)
    others = sorted(set(n.owner for n in nodes if n.owner and n.owner != mine))
    if others:
        ranks = sorted(n.rank for n in nodes if n.owner and n.owner != mine)
        raise ConfigError("cluster %s was made by %s, not %s: refusing to %s its node(s) of rank %s"
                          % (cluster, " and ".join(others), mine, what, ", ".join(str(r) for r in ranks)),
                          hint="Pick a cluster name of your own, or, if you really mean to change their cluster, set "
                               "force: true (gpu_cluster_force: true in the playbooks)")


def _create(provider, spec, ranks, beside, prepared, timeout, on_demand, created):
    """Create ``ranks`` (extending ``created`` as each launch returns, for the rollback); with the provider's
    ``spot`` option, the ranks of ``on_demand`` are launched apart, on-demand (the spot fallback). Returns the
    launch's ``info`` (where the nodes landed), merged over the launches."""
    on_demand = set(int(r) for r in on_demand or ()) if provider.opts.get("spot") else set()
    batches = [([r for r in ranks if r not in on_demand], None), ([r for r in ranks if r in on_demand], False)]
    info = {}
    spot = provider.opts.get("spot")
    for batch, market in batches:
        if not batch:
            continue
        if market is not None:
            provider.opts["spot"] = market
        try:
            launch = provider.create_nodes(spec, batch, existing=list(beside) + list(created), prepared=prepared,
                                           timeout=timeout)
        finally:
            provider.opts["spot"] = spot
        created.extend(launch)
        info.update(getattr(launch, "info", None) or {})
    return info


def ensure_present(provider, spec, count, wait=True, wait_timeout=600, check_mode=False, replace=(), force=False,
                   on_demand=()):
    """Reconcile the cluster to ``count`` running nodes; ``replace``: ranks whose node is deleted and created again
    (the other nodes are kept as they are). Deleting or replacing nodes another owner made needs ``force``.
    ``on_demand``: ranks whose new node is launched on-demand even with the ``spot`` option (the spot fallback)."""
    provider.preflight(spec)
    existing = provider.list_nodes(spec.cluster)
    plan = plan_nodes(existing, count, replace)
    check_owner(provider, spec.cluster, plan.delete, spec.owner, force, "delete (shrink)")
    check_owner(provider, spec.cluster, plan.replace, spec.owner, force, "replace")
    # what the new nodes are created beside: every node but those deleted or replaced
    gone = set(id(n) for n in plan.delete + plan.replace)
    beside = [n for n in existing if id(n) not in gone]
    prepared = None
    if plan.create:
        prepared = provider.preflight_create(spec, plan.create, existing=beside, check_mode=check_mode)
    stopped = [n for n in plan.keep if n.state == "stopped"]
    changed = plan.changed or bool(stopped)
    before = _summary(existing)
    result = {"changed": changed, "plan": plan.to_dict()}
    result["plan"]["start"] = [n.rank for n in stopped]
    after_names = ["%s (rank %d, %s)" % (n.name, n.rank, "running" if n in stopped else n.state) for n in plan.keep]
    replaced = set(n.rank for n in plan.replace)
    after_names += ["%s (rank %d, %s)" % ("%s-%d" % (spec.cluster, r), r, "to replace" if r in replaced else "to create")
                    for r in plan.create]
    result["diff"] = {"before": before, "after": {"count": count, "nodes": sorted(after_names, key=_rank_key)}}
    if check_mode:
        result["nodes"] = [n.to_dict() for n in sort_nodes(plan.keep)]
        result["cluster"] = provider.describe(nodes=existing, prepared=prepared)
        return result

    if plan.delete:
        provider.delete_nodes(spec.cluster, plan.delete, wait=wait, timeout=wait_timeout)
    if plan.replace:
        # always awaited: the new node takes the old one's name (and, on some clouds, its address)
        provider.delete_nodes(spec.cluster, plan.replace, wait=True, timeout=wait_timeout)
    if stopped:
        provider.start_nodes(spec.cluster, stopped)
    created = []
    try:
        if plan.create:
            info = _create(provider, spec, plan.create, beside, prepared, wait_timeout, on_demand, created)
            created = Launch(created, info)
        nodes = list(plan.keep) + [n for n in created if n.rank not in set(k.rank for k in plan.keep)]
        if wait and (created or stopped or any(n.state != "running" for n in nodes)):
            nodes = provider.wait_ready(spec.cluster, nodes, wait_timeout)
    except Exception as exc:  # any failure, a cloud error or not (an SDK bug, a KeyError): what this call made goes
        warning = _rollback(provider, spec.cluster, created or _made_by(provider, spec.cluster, plan), not existing)
        if warning:
            _attach_warning(exc, warning)
        raise
    result["nodes"] = [n.to_dict() for n in sort_nodes(nodes)]
    result["cluster"] = provider.describe(nodes=nodes, prepared=prepared, launch=created if plan.create else None)
    return result


def _rank_key(text):
    return int(text.split("(rank ", 1)[1].split(",", 1)[0])


def _made_by(provider, cluster, plan):
    """Nodes of ranks this call meant to create (a create that failed half-way returns nothing)."""
    try:
        return [n for n in provider.list_nodes(cluster) if n.rank in set(plan.create)]
    except Exception:  # pylint: disable=broad-except
        return []


def _attach_warning(exc, warning):
    """Carry ``warning`` on the exception, for the module to report beside the failure."""
    try:
        exc.rollback_warnings = list(getattr(exc, "rollback_warnings", []) or []) + [warning]
    except AttributeError:  # pragma: no cover - exceptions that take no attributes
        pass


def rollback_warnings(exc):
    return list(getattr(exc, "rollback_warnings", []) or [])


def _rollback(provider, cluster, created, cluster_was_empty):
    """Remove what a failed call created, so a failure leaves the cluster as it found it.

    Returns None when everything is gone, else a warning naming what is left (a failed rollback never hides the
    error that started it, and never goes unreported)."""
    step = "delete the nodes this call created"
    try:
        if created:
            provider.delete_nodes(cluster, created, wait=True)
        step = "delete the cluster's other resources"
        if cluster_was_empty and not provider.list_nodes(cluster):
            provider.delete_cluster_resources(cluster)
        return None
    except Exception as err:  # pylint: disable=broad-except
        left = []
        try:
            left += ["node %s (%s)" % (n.name, n.id) for n in sort_nodes(provider.list_nodes(cluster))
                     if n.id in set(c.id for c in created)]
            if cluster_was_empty:
                left += provider.cluster_resources(cluster)
        except Exception:  # pylint: disable=broad-except
            left = ["node %s (%s)" % (n.name, n.id) for n in sort_nodes(created)] or ["unknown (the cloud did not answer)"]
        return ("rollback of cluster %s failed (%s: %s); left behind, possibly still running and billed: %s. Remove "
                "them with state=absent (playbooks/teardown.yml) or by hand"
                % (cluster, step, err, ", ".join(left) or "nothing found"))


def ensure_absent(provider, cluster, wait=True, wait_timeout=600, check_mode=False, owner="", force=False):
    """Delete the cluster's nodes and other resources (those carrying the cluster and managed-by tags only); what is
    left alone is listed in ``kept``. Deleting nodes another owner made needs ``force``."""
    existing = provider.list_nodes(cluster)
    check_owner(provider, cluster, existing, owner, force, "delete")
    resources = provider.cluster_resources(cluster)
    changed = bool(existing or resources)
    result = {
        "changed": changed,
        "plan": {"keep": [], "create": [], "delete": sorted(n.rank for n in existing), "resources": resources},
        "diff": {"before": _summary(existing, resources), "after": _summary([], [])},
        "nodes": [],
    }
    result["cluster"] = provider.describe(nodes=existing)
    if check_mode or not changed:
        result["kept"] = provider.kept_resources(cluster)
        return result
    if existing:
        provider.delete_nodes(cluster, existing, wait=wait, timeout=wait_timeout)
    result["deleted_resources"] = provider.delete_cluster_resources(cluster)
    # what is left once the cluster's own resources are gone (a node's OS disk went with it)
    result["kept"] = provider.kept_resources(cluster)
    return result
