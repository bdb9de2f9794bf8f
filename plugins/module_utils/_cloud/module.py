# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules share: argument specs, validation, and error reporting."""

from __future__ import annotations

import getpass
import socket
import traceback

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (
    NodeSpec, sort_nodes, validate_cluster_id, validate_owner, validate_ssh_public_key, validate_ssh_user)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CloudError, ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.providers import (
    PROVIDERS, cloud_options, get_provider)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.reconcile import (
    ensure_absent, ensure_present, rollback_warnings)


def cluster_argument_spec():
    """Options that find a cluster, plus every cloud's own options."""
    spec = dict(
        cloud=dict(type="str", default="local", choices=sorted(PROVIDERS)),
        cluster=dict(type="str", required=True, aliases=["name"]),
        podman_conf=dict(type="path"),
    )
    spec.update(aws_connection_argument_spec())
    spec.update(azure_connection_argument_spec())
    spec.update(gcp_connection_argument_spec())
    return spec


def aws_connection_argument_spec():
    """How to reach EC2 (cloud aws). Unset, boto3's usual chain applies (AWS_* variables, profile, role)."""
    return dict(
        region=dict(type="str"),
        endpoint_url=dict(type="str"),
        access_key=dict(type="str", no_log=False),
        secret_key=dict(type="str", no_log=True),
        session_token=dict(type="str", no_log=True),
        profile=dict(type="str"),
    )


def azure_connection_argument_spec():
    """How to reach Azure Resource Manager (cloud azure). Unset, AZURE_* variables / DefaultAzureCredential apply."""
    return dict(
        subscription_id=dict(type="str"),
        tenant=dict(type="str"),
        client_id=dict(type="str"),
        secret=dict(type="str", no_log=True),
        authority_host=dict(type="str"),
        location=dict(type="str"),
        resource_group=dict(type="str"),
    )


def gcp_connection_argument_spec():
    """How to reach Compute Engine (cloud gcp), beside the shared region and endpoint_url. Unset, the project and
    credentials come from GCP_PROJECT / GOOGLE_CLOUD_PROJECT and GCP_SERVICE_ACCOUNT_FILE /
    GOOGLE_APPLICATION_CREDENTIALS, else Application Default Credentials."""
    return dict(
        project=dict(type="str"),
        credentials_file=dict(type="path", no_log=False),
        network=dict(type="str"),
    )


def instance_argument_spec():
    spec = cluster_argument_spec()
    spec.update(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        count=dict(type="int", default=2),
        replace=dict(type="list", elements="int", default=[]),
        instance_type=dict(type="str"),
        image=dict(type="str"),
        ssh_public_key=dict(type="str"),
        ssh_user=dict(type="str", default="gpuadmin"),
        labels=dict(type="dict", default={}),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        privileged=dict(type="bool", default=False),
        cpus=dict(type="str"),
        memory=dict(type="str"),
        ssh_access=dict(type="str", default="auto", choices=["auto", "address", "published"]),
        debian_mirror=dict(type="str"),
        owner=dict(type="str"),
        force=dict(type="bool", default=False),
        # cloud aws (defaults applied by the provider: an option left unset is not "set" for another cloud)
        placements=dict(type="list", elements="dict", options=dict(
            subnet_id=dict(type="str"), availability_zone=dict(type="str"), instance_type=dict(type="str"),
            location=dict(type="str"), zone=dict(type="str"))),
        min_count=dict(type="int"),
        key_name=dict(type="str", no_log=False),
        security_groups=dict(type="list", elements="str"),
        placement_group=dict(type="bool"),
        efa=dict(type="bool"),
        root_volume_size=dict(type="int"),
        root_volume_type=dict(type="str", choices=["gp3", "gp2", "io1", "io2"]),
        spot=dict(type="bool"),
        image_owners=dict(type="list", elements="str"),
        # cloud azure
        public_ip=dict(type="bool"),
        subnet_id=dict(type="str"),
        # cloud gcp
        subnetwork=dict(type="str"),
        accelerators=dict(type="list", elements="dict", options=dict(
            type=dict(type="str", required=True), count=dict(type="int", default=1))),
    )
    return spec


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
    defaults = dict((name, spec.get("default")) for name, spec in module.argument_spec.items())
    options = cloud_options(params["cloud"], params, defaults)
    return get_provider(params["cloud"], options, log=module.log)


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
            if params["replace"]:
                raise ConfigError("replace needs state=present", hint="Leave replace empty to remove the cluster")
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
            )
            existing_needed = params["count"]
            if not spec.ssh_public_key and existing_needed and not params.get("key_name"):
                have = len([n for n in provider.list_nodes(spec.cluster) if n.rank < existing_needed])
                if have < existing_needed or params["replace"]:
                    raise ConfigError("ssh_public_key is required to create nodes",
                                      hint="e.g. ssh_public_key: \"{{ lookup('file', '~/.ssh/id_ed25519.pub') }}\"")
            result = ensure_present(provider, spec, params["count"], wait=params["wait"],
                                    wait_timeout=params["wait_timeout"], check_mode=module.check_mode,
                                    replace=params["replace"], force=params["force"])
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
