# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules share: argument specs, validation, and error reporting."""

from __future__ import annotations

import getpass
import socket
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (
    NodeSpec, sort_nodes, validate_cluster_id, validate_owner, validate_ssh_public_key, validate_ssh_user)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CloudError, ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.providers import (
    PROVIDERS, argument_spec, check_cloud_options, cloud_options, get_provider)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.reconcile import (
    ensure_absent, ensure_present, rollback_warnings)


def cluster_argument_spec(clouds=None):
    """Options that find a cluster, plus how to reach every cloud (each cloud's ``cluster`` options); ``clouds``:
    only these clouds' (declarations)."""
    spec = dict(
        cloud=dict(type="str", default="local", choices=sorted(PROVIDERS)),
        cluster=dict(type="str", required=True, aliases=["name"]),
    )
    spec.update(argument_spec("cluster", clouds=clouds))
    return spec


def instance_argument_spec():
    spec = cluster_argument_spec()
    spec.update(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        count=dict(type="int", default=2),
        replace=dict(type="list", elements="int", default=[]),
        on_demand=dict(type="list", elements="int", default=[]),
        instance_type=dict(type="str"),
        image=dict(type="str"),
        ssh_public_key=dict(type="str"),
        ssh_user=dict(type="str", default="gpuadmin"),
        labels=dict(type="dict", default={}),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        owner=dict(type="str"),
        force=dict(type="bool", default=False),
        ttl=dict(type="float", default=0),
        self_stop=dict(type="bool", default=False),
    )
    # each cloud's own (declared next to its provider)
    spec.update(argument_spec("instance"))
    return spec


class CloudModule(AnsibleModule):
    """An AnsibleModule whose argument validation also refuses the options of another cloud than ``cloud``, naming
    the cloud each belongs to (from the clouds' declarations), before anything else runs."""

    def __init__(self, argument_spec, **kwargs):  # pylint: disable=redefined-outer-name
        super(CloudModule, self).__init__(argument_spec=argument_spec, **kwargs)
        try:
            check_cloud_options(self.params["cloud"], self.params, self.argument_spec)
        except ConfigError as exc:
            self.fail_json(msg=str(exc), error=exc.to_dict())


def fail(module, exc, **extra):
    warnings = rollback_warnings(exc)
    for warning in warnings:
        module.warn(warning)
    if warnings:
        extra["rollback_left"] = True
    module.fail_json(msg=str(exc), error=exc.to_dict(), **extra)


def default_owner():
    """Who runs the module, as ``user@host`` (the controller's, where the module runs on localhost)."""
    try:
        user = getpass.getuser()
    except Exception:  # pylint: disable=broad-except
        user = "unknown"
    return "%s@%s" % (user, socket.gethostname() or "localhost")


def owner_of(params):
    return validate_owner(params.get("owner") if params.get("owner") else default_owner())


def provider_for(module):
    """Validate the options that every cloud shares and build the cloud's provider."""
    params = module.params
    validate_cluster_id(params["cluster"])
    options = cloud_options(params["cloud"], params, module.argument_spec)
    return get_provider(params["cloud"], options, log=module.log)


def ttl_minutes(hours):
    """``ttl`` (hours) as whole minutes: 0 (no limit), else 1 minute .. 120 days (GCE's maxRunDuration range)."""
    hours = float(hours or 0)
    if hours < 0:
        raise ConfigError("ttl must be 0 (no limit) or more hours, got %s" % hours)
    minutes = int(round(hours * 60))
    if hours and not 1 <= minutes <= 120 * 24 * 60:
        raise ConfigError("ttl must be between 1 minute (0.0167) and 120 days (2880 hours), got %s hours" % hours)
    return minutes


def _labels(labels):
    for key, value in (labels or {}).items():
        if not isinstance(key, str) or not key or key.startswith("aiinfra-"):
            raise ConfigError("label %r is not allowed" % (key,), hint="Keys starting with 'aiinfra-' are reserved")
    return dict((k, str(v)) for k, v in (labels or {}).items())


def run_instance(module):
    params = module.params
    try:
        provider = provider_for(module)
        if params["count"] < 0:
            raise ConfigError("count must be 0 or more, got %d" % params["count"])
        if params["wait_timeout"] < 1:
            raise ConfigError("wait_timeout must be at least 1 second, got %d" % params["wait_timeout"])
        if params["state"] == "absent":
            if params["replace"] or params["on_demand"]:
                raise ConfigError("replace and on_demand need state=present",
                                  hint="Leave them empty to remove the cluster")
            result = ensure_absent(provider, params["cluster"], wait=params["wait"],
                                   wait_timeout=params["wait_timeout"], check_mode=module.check_mode,
                                   owner=owner_of(params), force=params["force"])
            for item in result.get("kept") or []:
                module.warn("teardown of cluster %s left %s alone" % (params["cluster"], item))
        else:
            spec = NodeSpec(
                cluster=params["cluster"],
                ssh_public_key=validate_ssh_public_key(params["ssh_public_key"]) if params["ssh_public_key"] else "",
                ssh_user=validate_ssh_user(params["ssh_user"]),
                instance_type=params["instance_type"] or "",
                image=params["image"] or "",
                labels=_labels(params["labels"]),
                owner=owner_of(params),
                ttl_minutes=ttl_minutes(params.get("ttl")),
                self_stop=bool(params.get("self_stop")),
            )
            existing_needed = params["count"]
            if not spec.ssh_public_key and existing_needed and not params.get("key_name"):
                have = len([n for n in provider.list_nodes(spec.cluster) if n.rank < existing_needed])
                if have < existing_needed or params["replace"]:
                    raise ConfigError("ssh_public_key is required to create nodes",
                                      hint="e.g. ssh_public_key: \"{{ lookup('file', '~/.ssh/id_ed25519.pub') }}\"")
            result = ensure_present(provider, spec, params["count"], wait=params["wait"],
                                    wait_timeout=params["wait_timeout"], check_mode=module.check_mode,
                                    replace=params["replace"], force=params["force"],
                                    on_demand=params["on_demand"])
        result["cluster"] = dict(result.get("cluster") or provider.describe(), id=params["cluster"])
    except CloudError as exc:
        fail(module, exc)
    except Exception as exc:  # pylint: disable=broad-except
        # not a cloud error (a bug, an SDK surprise): the rollback ran; say what it left, with the traceback
        for warning in rollback_warnings(exc):
            module.warn(warning)
        module.fail_json(msg="unexpected error: %s: %s" % (type(exc).__name__, exc), exception=traceback.format_exc(),
                         rollback_left=bool(rollback_warnings(exc)))
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


def run_instance_info(module):
    params = module.params
    try:
        provider = provider_for(module)
        nodes = sort_nodes(provider.list_nodes(params["cluster"]))
        resources = provider.cluster_resources(params["cluster"])
        cluster = dict(provider.describe(nodes=nodes), id=params["cluster"])
    except CloudError as exc:
        fail(module, exc)
    module.exit_json(changed=False, nodes=[n.to_dict() for n in nodes], resources=resources,
                     exists=bool(nodes or resources), cluster=cluster)
