# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``azure`` cloud: a GPU cluster on Azure VMs (azure-identity + azure-mgmt-compute/-network/-resource).

Per cluster: a resource group ``aiinfra-<cluster>`` (unless ``resource_group`` names one of the user's), and per
location it uses a VNet + subnet (unless ``subnet_id``), the firewall's NSG, a proximity placement group and an
availability set (Aligned, in the placement group: ND-series nodes then share one InfiniBand fabric). Per node
``<cluster>-<rank>``: a Standard static public IP (``public_ip``), a NIC with accelerated networking where the
size has it, and the VM; NIC, OS disk and public IP carry ``deleteOption: Delete``. ARM's PUT by name is the
idempotency key: a crash and a re-run never make a second node.

Every resource carries the cluster tag. Long-running operations are polled through azure-core's ARM poller
(``Azure-AsyncOperation`` / ``Location``) bounded by ``wait_timeout``; throttling (429 + ``Retry-After``) is retried
by azure-core's retry policy, honouring ``Retry-After``; what is left is classified once (errors.py) and
retried only when transient, through ``retry.call``.
"""

from __future__ import annotations

import os
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.options import CLOUD
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import retry
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure import shapes
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.client import RetryingArm
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.client import plain as _plain
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.errors import (
    classify, quota_details, with_detail)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.firewall import AzureFirewall
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (
    CLUSTER_TAG, MANAGED_TAG, MANAGED_VALUE, RANK_TAG, Prepared, Provider, fit_reservation, node_name)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CapacityError, CloudError, ConfigError, NotFoundError, QuotaError, TransientError, WaitTimeout)


def _sdk():
    """The Azure SDK classes, imported only when cloud azure is used (they take a second to import)."""
    try:
        from azure.identity import ClientSecretCredential, DefaultAzureCredential
        from azure.mgmt.compute import ComputeManagementClient
        from azure.mgmt.network import NetworkManagementClient
        from azure.mgmt.resource.resources import ResourceManagementClient
    except ImportError:
        raise ConfigError(missing_required_lib("azure-identity, azure-mgmt-compute, azure-mgmt-network and "
                                               "azure-mgmt-resource"),
                          hint="pip install azure-identity azure-mgmt-compute azure-mgmt-network azure-mgmt-resource "
                               "into the Python that runs the module; import error: %s"
                               % traceback.format_exc().strip().splitlines()[-1])
    return ClientSecretCredential, DefaultAzureCredential, ResourceManagementClient, ComputeManagementClient, \
        NetworkManagementClient


DEFAULT_ENDPOINT = "https://management.azure.com"
# seconds to connect to, and to wait for an answer from, Resource Manager (each request)
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 120
MICROSOFT_AUTHORITIES = ("login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn",
                         "login.partner.microsoftonline.cn")
VM = "Microsoft.Compute/virtualMachines"
NIC = "Microsoft.Network/networkInterfaces"
PIP = "Microsoft.Network/publicIPAddresses"
VNET = "Microsoft.Network/virtualNetworks"
NSG = "Microsoft.Network/networkSecurityGroups"
ASG = "Microsoft.Network/applicationSecurityGroups"
PPG = "Microsoft.Compute/proximityPlacementGroups"
AVSET = "Microsoft.Compute/availabilitySets"
DISK = "Microsoft.Compute/disks"
# teardown order inside a resource group the user named (dependents first)
DELETE_ORDER = (VM, NIC, PIP, DISK, AVSET, PPG, VNET, NSG, ASG)


def credential_settings(opts, environ):
    """Where the credentials come from: module options, then AWX's and azure-identity's variable names.

    Returns ``{kind, tenant, client_id, secret, subscription, authority, read}`` where ``read`` names the option
    or variable each value came from (for messages: never the values).
    """
    read = []

    def pick(option, names):
        if opts.get(option):
            read.append(option)
            return opts[option]
        for name in names:
            if environ.get(name):
                read.append(name)
                return environ[name]
        return None

    subscription = pick("subscription_id", ("AZURE_SUBSCRIPTION_ID",))
    tenant = pick("tenant", ("AZURE_TENANT_ID", "AZURE_TENANT"))
    client_id = pick("client_id", ("AZURE_CLIENT_ID",))
    secret = pick("secret", ("AZURE_CLIENT_SECRET", "AZURE_SECRET"))
    authority = opts.get("authority_host") or environ.get("AZURE_AUTHORITY_HOST") or None
    if not subscription:
        raise ConfigError("no Azure subscription given",
                          hint="Set subscription_id, or AZURE_SUBSCRIPTION_ID in the environment")
    if secret:
        missing = [what for what, value in (("tenant (tenant, AZURE_TENANT_ID or AZURE_TENANT)", tenant),
                                            ("client_id (client_id or AZURE_CLIENT_ID)", client_id)) if not value]
        if missing:
            raise ConfigError("a client secret was given but not its %s" % " and ".join(missing),
                              hint="A service principal needs tenant, client_id and secret together")
        kind = "service_principal"
    else:
        kind = "default"
    return {"kind": kind, "tenant": tenant, "client_id": client_id, "secret": secret, "subscription": subscription,
            "authority": authority, "read": [r for r in read if r not in ("subscription_id", "AZURE_SUBSCRIPTION_ID")]}


def _discovery_off(authority):
    host = (authority or "").split("://", 1)[-1].split("/", 1)[0].lower()
    return bool(host) and host not in MICROSOFT_AUTHORITIES


class AzureProvider(AzureFirewall, Provider):
    """Azure Resource Manager. Options: connection (subscription, credentials, endpoint, location, resource group)
    and the instance module's Azure options."""

    name = "azure"
    cloud = CLOUD

    def __init__(self, options=None, log=None, clients=None, policy=None, sleep=time.sleep, environ=None):
        super(AzureProvider, self).__init__(options, log)
        self._clients = clients
        self.environ = os.environ if environ is None else environ
        # the one retry layer (azure-core's is off): 10 attempts within 180 s, honouring Retry-After
        self.policy = policy or retry.RetryPolicy(attempts=10, base=0.5, cap=8.0, deadline=180, sleep=sleep)
        self.api = RetryingArm(self.policy, log=self.log, context=self._context)
        self.sleep = sleep
        self._creds = None

    @property
    def calls(self):
        return self.api.calls

    # -- connection ------------------------------------------------------------------------------------------
    @property
    def endpoint(self):
        return (self.opts.get("endpoint_url") or DEFAULT_ENDPOINT).rstrip("/")

    @property
    def subscription(self):
        if self._creds is None:
            self._creds = credential_settings(self.opts, self.environ)
        return self._creds["subscription"]

    @property
    def group(self):
        return self.opts.get("resource_group") or ""

    def group_for(self, cluster):
        return self.opts.get("resource_group") or shapes.default_resource_group(cluster)

    def _own_group(self, cluster):
        return not self.opts.get("resource_group")

    def clients(self):
        """``(resource, compute, network)`` SDK clients sharing one credential (made on first use)."""
        if self._clients is None:
            (ClientSecretCredential, DefaultAzureCredential, ResourceManagementClient, ComputeManagementClient,
             NetworkManagementClient) = _sdk()
            creds = self._creds or credential_settings(self.opts, self.environ)
            self._creds = creds
            kwargs = {}
            if creds["authority"]:
                kwargs["authority"] = creds["authority"]
                if _discovery_off(creds["authority"]):
                    kwargs["disable_instance_discovery"] = True
            if creds["kind"] == "service_principal":
                credential = ClientSecretCredential(creds["tenant"], creds["client_id"], creds["secret"], **kwargs)
            else:
                credential = DefaultAzureCredential(**kwargs)
            # one retry layer: the collection's (retry.call, which honours Retry-After); azure-core's own retries
            # are off, and every request has a connect and a read timeout (azure-core's default is none)
            common = dict(base_url=self.endpoint, credential_scopes=[self.endpoint + "/.default"],
                          retry_total=0, retry_connect=0, retry_read=0, retry_status=0,
                          connection_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                          polling_interval=1,
                          user_agent="aiinfra.gpu_cluster")
            self._clients = (ResourceManagementClient(credential, creds["subscription"], **common),
                             ComputeManagementClient(credential, creds["subscription"], **common),
                             NetworkManagementClient(credential, creds["subscription"], **common))
        return self._clients

    def _context(self, extra=None):
        ctx = dict(extra or {})
        creds = self._creds or {}
        if creds.get("kind") == "service_principal":
            ctx["credential"] = "service principal from %s" % ", ".join(creds["read"])
        elif creds:
            ctx["credential"] = "DefaultAzureCredential (no secret in secret, AZURE_CLIENT_SECRET or AZURE_SECRET)"
        return ctx

    def _call(self, fn, *args, **kwargs):
        return self.api.call(fn, *args, **kwargs)

    def _wait(self, pollers, what, context=None, timeout=600, restart=None):
        """Wait for ``pollers`` ([(label, poller)]) within ``timeout``; return {label: result or CloudError}.

        ``restart`` ({label: (fn, args)}): how to start an operation again whose polling failed transiently
        (azure-core retries nothing: this is the one retry layer for polls too). Every operation so restarted is an
        idempotent PUT or DELETE by name; restarts are bounded by the retry policy's attempts and ``timeout``."""
        deadline = time.monotonic() + timeout
        out = {}
        pending = list(pollers)
        attempt = 0
        while pending:
            attempt += 1
            again = []
            for label, poller in pending:
                try:
                    poller.wait(timeout=max(0.0, deadline - time.monotonic()))
                    if not poller.done():
                        raise WaitTimeout("timed out after %ss waiting for %s (%s)" % (timeout, what, label),
                                          hint="Raise wait_timeout; the operation goes on in Azure")
                    out[label] = _plain(poller.result())
                    continue
                except WaitTimeout:
                    raise
                except CloudError as exc:
                    out[label] = exc
                except Exception as exc:  # pylint: disable=broad-except
                    err = with_detail(classify(exc, self._context(context)), exc)
                    if err is None:
                        raise
                    out[label] = err
                if isinstance(out[label], TransientError) and label in (restart or {}):
                    again.append(label)
            if not again or attempt >= self.policy.attempts or time.monotonic() >= deadline:
                break
            wait = max(self.policy.delay(attempt), max(getattr(out[label], "retry_after", 0) or 0 for label in again))
            self.log("azure: %s: %s; started again in %.2fs" % (what, out[again[0]], wait))
            self.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            pending = []
            for label in again:
                fn, args = restart[label]
                try:
                    pending.append((label, self._call(fn, *args, context=context)))
                except CloudError as exc:
                    out[label] = exc
        return out

    def _lros(self, calls, what, context=None, timeout=600):
        """Start each ``(label, fn, args)`` long-running operation, then wait for all (at most ``timeout``
        seconds); raise the first failure."""
        pollers = [(label, self._call(fn, *args, context=context)) for label, fn, args in calls]
        results = self._wait(pollers, what, context, timeout,
                             restart=dict((label, (fn, args)) for label, fn, args in calls))
        for label, result in results.items():
            if isinstance(result, CloudError):
                raise result
        return results

    # -- reading -------------------------------------------------------------------------------------------
    def _group_exists(self, cluster):
        resource = self.clients()[0]
        try:
            return _plain(self._call(resource.resource_groups.get, self.group_for(cluster)))
        except NotFoundError:
            return None

    def _list(self, cluster, rtype):
        """Resources of one type in the cluster's group carrying the cluster tag ([] when the group is missing)."""
        resource, compute, network = self.clients()
        group = self.group_for(cluster)
        ops = {
            VM: lambda: self._call(compute.virtual_machines.list, group, expand="instanceView", listing=True),
            NIC: lambda: self._call(network.network_interfaces.list, group, listing=True),
            PIP: lambda: self._call(network.public_ip_addresses.list, group, listing=True),
            NSG: lambda: self._call(network.network_security_groups.list, group, listing=True),
            ASG: lambda: self._call(network.application_security_groups.list, group, listing=True),
        }
        try:
            items = ops[rtype]()
        except NotFoundError:
            return []
        return [i for i in items if shapes.owned(i, cluster)]

    def _all_nodes(self, cluster):
        """Every VM of the cluster as a :class:`Node`, those whose provisioning failed included."""
        vms = self._list(cluster, VM)
        if not vms:
            return []
        nics = dict((n["id"].lower(), n) for n in self._list(cluster, NIC))
        pips = dict((p["id"].lower(), p) for p in self._list(cluster, PIP))
        return [shapes.node_from_vm(vm, cluster, nics, pips) for vm in vms]

    def list_nodes(self, cluster):
        """The cluster's live nodes. A VM whose provisioning failed is not a node: its rank is placed again."""
        return [n for n in self._all_nodes(cluster) if n.state not in ("failed", "terminating")]

    # -- checks --------------------------------------------------------------------------------------------
    def preflight(self, spec):
        """Offline checks of the options (no API call)."""
        opts = self.opts
        if not spec.instance_type:
            raise ConfigError("instance_type is required on cloud azure",
                              hint="A VM size, e.g. Standard_ND96isr_H100_v5, Standard_NC24ads_A100_v4")
        if not spec.image:
            raise ConfigError("image is required on cloud azure",
                              hint="A marketplace URN publisher:offer:sku:version (e.g. "
                                   "microsoft-dsvm:ubuntu-hpc:2204:latest) or an image id")
        shapes.parse_image(spec.image)
        shapes.plan_locations(opts.get("placements"), opts.get("location"))
        if opts.get("resource_group") and not shapes.RG_RE.fullmatch(opts["resource_group"]):
            raise ConfigError("resource_group %r is not a valid resource group name" % opts["resource_group"])
        if opts.get("subnet_id") and not shapes.SUBNET_ID_RE.fullmatch(opts["subnet_id"]):
            raise ConfigError("subnet_id %r is not a subnet resource id" % opts["subnet_id"],
                              hint="/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Network/"
                                   "virtualNetworks/VNET/subnets/SUBNET")
        group_id = (opts.get("reservation") or {}).get("id")
        if opts.get("reservation") and not group_id:
            raise ConfigError("reservation needs an id on cloud azure (a capacity reservation group's resource id)")
        if group_id and not shapes.CRG_ID_RE.fullmatch(group_id):
            raise ConfigError("reservation id %r is not a capacity reservation group's resource id" % group_id,
                              hint="/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/"
                                   "capacityReservationGroups/NAME")
        if group_id and opts.get("spot"):
            raise ConfigError("Spot VMs cannot be launched into a capacity reservation group",
                              hint="Set either spot or reservation")
        size = opts.get("root_volume_size")
        if size is not None and not 30 <= size <= 4095:
            raise ConfigError("root_volume_size must be 30..4095 GiB, got %d" % size)
        if len(spec.labels) > 40:
            raise ConfigError("too many labels (%d): Azure allows 50 tags, the collection uses up to 5"
                              % len(spec.labels))
        for key, value in spec.labels.items():
            if len(key) > 512 or len(str(value)) > 256 or any(c in key for c in "<>%&\\?/"):
                raise ConfigError("label %r is not a valid Azure tag" % key,
                                  hint="Keys up to 512 characters without <>%&\\?/, values up to 256")

    def preflight_create(self, spec, ranks, existing=(), check_mode=False):
        prepared = self._resolve(spec, existing, check_mode)
        tries, skipped, reservation = self._reservation(spec, ranks, existing, prepared.tries)
        prepared.tries = tries
        prepared.skipped = list(prepared.skipped) + skipped
        prepared.facts["reservation"] = reservation
        return prepared

    def _reservation(self, spec, ranks, existing, tries):
        """Look the capacity reservation group up; settle which tries launch into it (:func:`fit_reservation`)."""
        group_id = (self.opts.get("reservation") or {}).get("id")
        if not group_id:
            return tries, [], None
        compute = self.clients()[1]
        _sub, rg, name = shapes.CRG_ID_RE.fullmatch(group_id).groups()
        try:
            group = _plain(self._call(compute.capacity_reservation_groups.get, rg, name))
        except NotFoundError as exc:
            raise ConfigError("capacity reservation group %s does not exist" % group_id, code=exc.code,
                              hint="az capacity reservation group list shows yours")
        location = (group.get("location") or "").lower().replace(" ", "")
        reservations = []
        for ref in (group.get("properties") or {}).get("capacityReservations") or []:
            rname = ref["id"].rstrip("/").rsplit("/", 1)[-1]
            found = _plain(self._call(compute.capacity_reservations.get, rg, name, rname))
            sku = found.get("sku") or {}
            used = len((found.get("properties") or {}).get("virtualMachinesAssociated") or [])
            reservations.append({"size": sku.get("name"), "zones": found.get("zones") or [],
                                 "free": int(sku.get("capacity") or 0) - used})
        mine = [r for r in reservations if (r["size"] or "").lower() == spec.instance_type.lower()]

        def fits(trial):
            where = "%s%s" % (trial["location"], " zone %s" % trial["zone"] if trial["zone"] else "")
            if trial["location"] != location:
                return "%s: the group is in %s" % (where, location)
            if not mine:
                return "%s %s: the group reserves %s" % (where, spec.instance_type,
                                                         ", ".join(sorted(set(r["size"] for r in reservations)))
                                                         or "nothing")
            if not any((trial["zone"] in r["zones"]) if r["zones"] else not trial["zone"] for r in mine):
                return "%s: the group's %s reservations are in zone(s) %s" % (
                    where, spec.instance_type, ", ".join(sorted(z for r in mine for z in r["zones"])) or "none "
                    "(regional: leave the placement's zone unset)")
            return None
        zones = set(t["zone"] for t in tries if not fits(t))
        free = sum(r["free"] for r in mine if (set(r["zones"]) & zones if r["zones"] else None in zones))
        tries, skipped = fit_reservation(tries, group_id, fits, free, self.minimum_count(ranks, existing),
                                         "%s in %s" % (spec.instance_type, location))
        return tries, skipped, {"id": group_id, "location": location, "free": free}

    def _resolve(self, spec, existing=(), check_mode=False):
        resource, compute, network = self.clients()
        opts = self.opts
        provider = _plain(self._call(resource.providers.get, "Microsoft.Compute"))
        known = set()
        for rtype in provider.get("resourceTypes") or []:
            if (rtype.get("resourceType") or "").lower() == "virtualmachines":
                known.update(loc.lower().replace(" ", "") for loc in rtype.get("locations") or [])
        where = sorted(set(n.zone.split("-")[0] for n in existing if n.zone))
        tries = shapes.plan_locations(opts.get("placements"), opts.get("location"), where[0] if where else None)
        unknown = sorted(set(t["location"] for t in tries if t["location"] not in known))
        if unknown:
            raise ConfigError("location %s is not an Azure location of this subscription" % ", ".join(unknown),
                              hint="Known locations include: %s" % ", ".join(sorted(known)[:12]))
        subnet = None
        if opts.get("subnet_id"):
            subnet = self._subnet(opts["subnet_id"])
            tries = [t for t in tries if t["location"] == subnet["location"]]
            if not tries:
                raise ConfigError("subnet_id is in %s but no placement is" % subnet["location"],
                                  hint="Set location (or placements) to %s" % subnet["location"])
        skus = {}
        skipped = []
        usable = []
        for trial in tries:
            loc = trial["location"]
            if loc not in skus:
                skus[loc] = self._call(compute.resource_skus.list, filter="location eq '%s'" % loc, listing=True)
            problem = shapes.sku_problem(skus[loc], spec.instance_type, loc, trial["zone"])
            if problem:
                skipped.append(dict(trial, error=problem))
            else:
                usable.append(trial)
        if not usable:
            raise ConfigError("VM size %s cannot run in any placement: %s"
                              % (spec.instance_type, "; ".join(s["error"] for s in skipped)),
                              hint="Pick locations that offer it (az vm list-skus --size %s) or another size"
                                   % spec.instance_type)
        image = shapes.parse_image(spec.image)
        images = {}
        for loc in sorted(set(t["location"] for t in usable)):
            images[loc] = self._image(image, loc)
        # the cluster's NSG goes on its own subnet, or on every NIC in a subnet of the user's (subnet_id): without
        # it admin_cidrs would not be enforced, so no firewall, no nodes
        nsg = self._primary_nsg(spec.cluster, self._list(spec.cluster, NSG))
        if nsg is None and not check_mode:
            raise ConfigError("cluster %s has no firewall" % spec.cluster,
                              hint="Run aiinfra.gpu_cluster.firewall for the cluster first (SSH from "
                                   "admin_cidrs, all traffic between the nodes); with subnet_id its NSG goes on "
                                   "every node's network interface")
        if not self._own_group(spec.cluster) and self._group_exists(spec.cluster) is None:
            raise ConfigError("resource group %s does not exist" % self.group_for(spec.cluster),
                              hint="Create it, or leave resource_group unset for one of the cluster's own")
        if self._self_deallocate(spec):
            self._check_role_permission(spec)
        return Prepared(tries=usable, skipped=skipped, facts={"skus": skus, "images": images, "subnet": subnet,
                                                              "nsg": nsg})

    def _subnet(self, subnet_id):
        match = shapes.SUBNET_ID_RE.fullmatch(subnet_id)
        resource, compute, network = self.clients()
        try:
            found = _plain(self._call(network.subnets.get, match.group(2), match.group(3), match.group(4)))
            vnet = _plain(self._call(network.virtual_networks.get, match.group(2), match.group(3)))
        except NotFoundError as exc:
            raise ConfigError("subnet_id %s does not exist" % subnet_id, code=exc.code,
                              hint="Check the id (az network vnet subnet show), or leave subnet_id unset for a "
                                   "network of the cluster's own")
        return {"id": found.get("id") or subnet_id, "location": vnet.get("location")}

    def _image(self, image, location):
        if "id" in image:
            return image
        compute = self.clients()[1]
        urn = "%s:%s:%s:%s" % (image["publisher"], image["offer"], image["sku"], image["version"])
        try:
            if image["version"].lower() == "latest":
                found = self._call(compute.virtual_machine_images.list, location, image["publisher"],
                                   image["offer"], image["sku"], top=1, orderby="name desc")
                if not found:
                    raise NotFoundError("no versions")
            else:
                self._call(compute.virtual_machine_images.get, location, image["publisher"], image["offer"],
                           image["sku"], image["version"])
        except NotFoundError:
            raise ConfigError("image %s does not resolve in %s" % (urn, location),
                              hint="Check publisher:offer:sku:version (az vm image list --all --location %s "
                                   "--publisher %s)" % (location, image["publisher"]))
        return image

    # -- creating ------------------------------------------------------------------------------------------
    # -- the failover's steps (create_nodes is the base class's) --------------------------------------------
    placement_kinds = "locations or zones"

    def _before_launch(self, spec, ranks, existing, prepared, timeout):
        failed = [n.rank for n in self._all_nodes(spec.cluster) if n.rank in ranks and n.state == "failed"]
        if failed:
            # a VM whose allocation failed keeps its name and NIC: clear it before placing the rank again
            self._delete_ranks(spec.cluster, failed, timeout)
        self._ensure_group(spec, self.opts.get("location") or prepared.tries[0]["location"])
        return {"timeout": timeout}

    def _launch_in(self, spec, ranks, trial, prepared, minimum, state):
        nodes = self._create_in(spec, ranks, trial, prepared, state["timeout"])
        return nodes, dict(trial, count=len(nodes), instance_type=spec.instance_type)

    def _after_capacity_error(self, spec, ranks, trial, state):
        self._delete_ranks(spec.cluster, ranks, state["timeout"])

    def _describe_try(self, attempt):
        return "%s%s: %s" % (attempt["location"], " zone %s" % attempt["zone"] if attempt["zone"] else "",
                             attempt["error"])

    def _tags(self, spec, rank=None):
        tags = spec.tags(rank)
        if rank is not None:
            tags[shapes.SSH_USER_TAG] = spec.ssh_user
        return tags

    def _ensure_group(self, spec, location):
        if not self._own_group(spec.cluster):
            return
        resource = self.clients()[0]
        group = self._group_exists(spec.cluster)
        if group is None:
            self._call(resource.resource_groups.create_or_update, self.group_for(spec.cluster),
                       shapes.resource_group_body(location, spec.tags()))
        elif (group.get("tags") or {}).get(CLUSTER_TAG) != spec.cluster:
            raise ConfigError("resource group %s exists but does not carry cluster %s's tag"
                              % (self.group_for(spec.cluster), spec.cluster),
                              hint="Name the group with resource_group (it is never deleted then), or remove it")

    def _rid(self, cluster, rtype, name):
        return shapes.resource_id(self.subscription, self.group_for(cluster), rtype, name)

    def _create_in(self, spec, ranks, trial, res, timeout):
        resource, compute, network = self.clients()
        loc, zone = trial["location"], trial["zone"]
        group = self.group_for(spec.cluster)
        where = "%s%s" % (loc, " zone %s" % zone if zone else "")
        ctx = {"instance_type": spec.instance_type, "placement": where,
               "family": shapes.sku_family(res["skus"][loc], spec.instance_type)}
        subnet_id, nsg_id, asg_id = self._ensure_network(spec, loc, res, timeout)
        ppg_id, avset_id = self._ensure_placement(spec, loc, zone)
        accelerated = shapes.sku_capability(res["skus"][loc], spec.instance_type,
                                            "AcceleratedNetworkingEnabled", "False") == "True"
        pip_ids = {}
        if self.opts.get("public_ip") is not False:
            calls = []
            for rank in ranks:
                name = shapes.pip_name(spec.cluster, rank)
                pip_ids[rank] = self._rid(spec.cluster, PIP, name)
                calls.append((rank, network.public_ip_addresses.begin_create_or_update,
                              (group, name, shapes.public_ip_body(loc, self._tags(spec, rank), zone))))
            self._lros(calls, "public IPs", ctx, timeout)
        calls = []
        nic_ids = {}
        for rank in ranks:
            name = shapes.nic_name(spec.cluster, rank)
            nic_ids[rank] = self._rid(spec.cluster, NIC, name)
            calls.append((rank, network.network_interfaces.begin_create_or_update,
                          (group, name, shapes.nic_body(loc, self._tags(spec, rank), subnet_id, pip_ids.get(rank),
                                                        nsg_id if res["subnet"] else None, accelerated,
                                                        asg_id=asg_id))))
        self._lros(calls, "network interfaces", ctx, timeout)
        pollers = []
        restart = {}
        first_error = None
        for rank in ranks:
            name = node_name(spec.cluster, rank)
            body = shapes.vm_body(loc, self._tags(spec, rank), spec.instance_type, res["images"][loc], name,
                                  spec.ssh_user, spec.ssh_public_key, nic_ids[rank], zone=zone, avset_id=avset_id,
                                  ppg_id=ppg_id, root_volume_size=self.opts.get("root_volume_size"),
                                  spot=bool(self.opts.get("spot")), identity=self._self_deallocate(spec),
                                  reservation_group=(res.get("reservation") or {}).get("id")
                                  if trial.get("reservation") else None)
            restart[rank] = (compute.virtual_machines.begin_create_or_update, (group, name, body))
            try:
                pollers.append((rank, self._call(compute.virtual_machines.begin_create_or_update, group, name, body,
                                                 context=ctx)))
            except CloudError as exc:
                first_error = first_error or exc
                break
        results = self._wait(pollers, "virtual machines", ctx, timeout, restart=restart)
        errors = [r for r in results.values() if isinstance(r, CloudError)]
        if first_error is not None:
            errors.insert(0, first_error)
        capacity = [e for e in errors if isinstance(e, CapacityError)]
        if capacity:
            raise capacity[0]
        if errors:
            err = errors[0]
            if isinstance(err, QuotaError):
                raise self._quota_with_usage(err, loc, ctx)
            raise err
        if self._self_deallocate(spec):
            for rank in ranks:
                self._assign_self_stop(results[rank], ctx)
        return [n for n in self.list_nodes(spec.cluster) if n.rank in set(ranks)]

    # -- the self-stop: the VM deallocates itself through its own identity -----------------------------------
    def _self_deallocate(self, spec):
        """Whether new VMs get an identity and a role on themselves (self_stop, unless self_stop_deallocate false)."""
        return bool(spec.self_stop) and self.opts.get("self_stop_deallocate") is not False

    def _arm(self, method, path, body=None, api_version=shapes.AUTHORIZATION_API, context=None, query=None):
        """One Resource Manager request the SDK clients have no operation for (Microsoft.Authorization), through the
        resource client's pipeline (its credential and timeouts) and the collection's retry layer; the answer's JSON
        (None when empty). An error answer raises as the SDK's operations do (classified the same way)."""
        from azure.core.rest import HttpRequest  # pylint: disable=import-outside-toplevel
        resource = self.clients()[0]
        params = dict(query or {}, **{"api-version": api_version})

        def send():
            response = resource.send_request(HttpRequest(method, self.endpoint + path, params=params, json=body))
            response.raise_for_status()
            return response.json() if response.content else None
        return self._call(send, context=context)

    def _role_id(self):
        return shapes.role_definition_id(self.subscription, self.opts.get("self_stop_role"))

    def _check_role_permission(self, spec):
        """Before anything is made: may the credential assign roles where the VMs go? (Its permissions on the
        resource group, Resource Manager's ``permissions`` read. A group that does not exist yet - a check before
        the firewall made it - is not asked about; the role assignment at launch then says it, and the VMs made go.)"""
        if self._group_exists(spec.cluster) is None:
            return
        scope = "/subscriptions/%s/resourceGroups/%s" % (self.subscription, self.group_for(spec.cluster))
        answer = self._arm("GET", scope + "/providers/Microsoft.Authorization/permissions",
                           context={"resource": "the credential's permissions on %s" % scope}) or {}
        if not shapes.allows(answer.get("value"), shapes.ROLE_ASSIGNMENT_WRITE):
            raise ConfigError(
                "the nodes are to stop themselves (gpu_cluster_ttl / gpu_cluster_idle_minutes), which on azure means "
                "each VM deallocates itself through its own identity, but the credential may not assign roles (%s) "
                "on %s" % (shapes.ROLE_ASSIGNMENT_WRITE, scope), code="AuthorizationFailed",
                hint="Grant it Owner, User Access Administrator or Role Based Access Control Administrator on the "
                     "resource group; or set self_stop_deallocate: false in the instance options - then a node "
                     "that stops itself only powers off, and Azure bills it until teardown")

    def _assign_self_stop(self, vm, ctx):
        """The role assignment that lets ``vm`` (its system-assigned identity) deallocate itself, on the VM alone."""
        principal = (vm.get("identity") or {}).get("principalId") or (vm.get("identity") or {}).get("principal_id")
        if not principal:
            raise CloudError("VM %s came back without a managed identity, so it cannot deallocate itself"
                             % vm.get("name"), hint="Set self_stop_deallocate: false to have it power off instead")
        role = self._role_id()
        path = "%s/providers/Microsoft.Authorization/roleAssignments/%s" % (
            vm["id"], shapes.role_assignment_name(vm["id"], principal, role))
        try:
            self._arm("PUT", path, shapes.role_assignment_body(role, principal),
                      context=dict(ctx, resource="role assignment of %s" % vm.get("name")))
        except ConfigError as exc:
            if exc.code == "RoleAssignmentExists":  # the same assignment made before under another name
                return
            if exc.code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
                raise ConfigError("cannot let VM %s deallocate itself: %s" % (vm.get("name"), exc.message), code=exc.code,
                                  hint="Assigning roles needs Owner, User Access Administrator or Role Based Access "
                                       "Control Administrator on the resource group; or set self_stop_deallocate: "
                                       "false (the node then only powers off, and Azure bills it until teardown)")
            raise

    def _remove_self_stop(self, vms):
        """Remove the role assignments made on ``vms`` for their self-stop (before the VMs go: a role assignment
        does not follow its principal out of the directory by itself). Returns their ids."""
        removed = []
        for vm in vms:
            principal = (vm.get("identity") or {}).get("principalId") or (vm.get("identity") or {}).get("principal_id")
            if not principal:
                continue
            listing = self._arm("GET", vm["id"] + "/providers/Microsoft.Authorization/roleAssignments",
                                query={"$filter": "principalId eq '%s'" % principal},
                                context={"resource": "role assignments of %s" % vm.get("name")}) or {}
            for item in listing.get("value") or []:
                if ((item.get("properties") or {}).get("scope") or "").lower() != vm["id"].lower():
                    continue  # inherited from above the VM: not ours
                try:
                    self._arm("DELETE", item["id"], context={"resource": "role assignment %s" % item.get("name")})
                except NotFoundError:
                    pass
                removed.append(item["id"])
        return removed

    def _quota_with_usage(self, err, location, ctx):
        if quota_details(getattr(err, "detail", "")) or not ctx.get("family"):
            return err
        compute = self.clients()[1]
        try:
            usages = self._call(compute.usage.list, location, listing=True)
        except CloudError:
            return err
        for usage in usages:
            if (usage.get("name") or {}).get("value") == ctx["family"]:
                return QuotaError("Azure quota for %s in %s is too low: limit %s vCPUs, %s in use"
                                  % (ctx["family"], location, usage.get("limit"), usage.get("currentValue")),
                                  hint=err.hint, code=err.code)
        return err

    def _ensure_network(self, spec, loc, res, timeout):
        """(subnet id, NSG id, ASG id) for nodes in ``loc``: the user's subnet, or the cluster's VNet there with the
        firewall's NSG on its subnet (copied from the firewall's location when the cluster fails over), and the
        cluster's application security group there (every NIC is a member; the NSG admits its members only)."""
        asg_id = self._asg_in(spec.cluster, loc, dict((res.get("nsg") or {}).get("tags") or spec.tags()), timeout)
        if res["subnet"]:
            # the user's subnet: the cluster's NSG (copied to the subnet's location if need be) on every NIC
            return res["subnet"]["id"], self._nsg_in(spec.cluster, loc, res.get("nsg"), timeout), asg_id
        network = self.clients()[2]
        group = self.group_for(spec.cluster)
        nsg_id = self._nsg_in(spec.cluster, loc, res.get("nsg"), timeout)
        name = shapes.vnet_name(spec.cluster, loc)
        wanted = shapes.vnet_body(loc, spec.tags(), nsg_id)
        try:
            current = _plain(self._call(network.virtual_networks.get, group, name))
        except NotFoundError:
            current = None
        if current is None or not _same_vnet(current, wanted):
            self._lros([(name, network.virtual_networks.begin_create_or_update, (group, name, wanted))],
                       "the cluster's network", timeout=timeout)
        return "%s/subnets/%s" % (self._rid(spec.cluster, VNET, name), shapes.SUBNET_NAME), nsg_id, asg_id

    def _ensure_placement(self, spec, loc, zone):
        """A proximity placement group, and (without a zone) an Aligned availability set in it."""
        compute = self.clients()[1]
        group = self.group_for(spec.cluster)
        ppg = shapes.ppg_name(spec.cluster, loc)
        self._call(compute.proximity_placement_groups.create_or_update, group, ppg,
                   shapes.ppg_body(loc, spec.tags(), zone))
        ppg_id = self._rid(spec.cluster, PPG, ppg)
        if zone:
            return ppg_id, None
        avset = shapes.avset_name(spec.cluster, loc)
        self._call(compute.availability_sets.create_or_update, group, avset,
                   shapes.avset_body(loc, spec.tags(), ppg_id))
        return None, self._rid(spec.cluster, AVSET, avset)

    def start_nodes(self, cluster, nodes):
        compute = self.clients()[1]
        group = self.group_for(cluster)
        self._lros([(n.rank, compute.virtual_machines.begin_start, (group, n.name)) for n in nodes], "nodes to start")

    # -- waiting -------------------------------------------------------------------------------------------
    def wait_ready(self, cluster, nodes, timeout):
        want = dict((n.rank, n) for n in nodes)
        if not want:
            return []
        pending = {}
        nodes_now = []

        def failed():
            return set(n.rank for n in nodes_now if n.state == "failed")

        def ready():
            nodes_now[:] = self._all_nodes(cluster)
            current = dict((n.rank, n) for n in nodes_now if n.state not in ("failed", "terminating"))
            pending.clear()
            for rank in want:
                node = current.get(rank)
                state = node.state if node else "missing"
                if state == "missing" and rank in failed():
                    raise CloudError("node %s failed to provision" % node_name(cluster, rank),
                                     hint="Its VM is in state Failed; a re-run deletes and places it again")
                if state != "running":
                    pending[rank] = state
            return None if pending else [current[r] for r in want]
        ready.pending = lambda: ", ".join("%s (%s)" % (node_name(cluster, r), s) for r, s in sorted(pending.items()))
        return retry.wait_until(ready, timeout, interval=2.0, what="%d node(s) of %s to run" % (len(want), cluster),
                                sleep=self.sleep)

    # -- deleting ------------------------------------------------------------------------------------------
    def delete_nodes(self, cluster, nodes, wait=True, timeout=600):
        self._delete_ranks(cluster, [n.rank for n in nodes], timeout)

    def _delete_ranks(self, cluster, ranks, timeout=600):
        """Delete the VMs of ``ranks`` (NIC, disk and IP go with them), then any NIC / IP of theirs left over."""
        compute, network = self.clients()[1], self.clients()[2]
        group = self.group_for(cluster)
        ranks = set(str(r) for r in ranks)

        def mine(items):
            return [i for i in items if (i.get("tags") or {}).get(RANK_TAG) in ranks]
        vms = mine(self._list(cluster, VM))
        self._remove_self_stop(vms)
        self._lros([(vm["name"], compute.virtual_machines.begin_delete, (group, vm["name"])) for vm in vms],
                   "VMs to delete", timeout=timeout)
        nics = mine(self._list(cluster, NIC))
        self._lros([(n["name"], network.network_interfaces.begin_delete, (group, n["name"])) for n in nics],
                   "network interfaces to delete", timeout=timeout)
        pips = mine(self._list(cluster, PIP))
        self._lros([(p["name"], network.public_ip_addresses.begin_delete, (group, p["name"])) for p in pips],
                   "public IPs to delete", timeout=timeout)

    def _group_resources(self, cluster):
        resource = self.clients()[0]
        try:
            items = self._call(resource.resources.list_by_resource_group, self.group_for(cluster),
                               filter="tagName eq '%s' and tagValue eq '%s'" % (CLUSTER_TAG, cluster), listing=True)
        except NotFoundError:
            return []
        return [i for i in items if shapes.owned(i, cluster)]

    def cluster_resources(self, cluster):
        out = ["%s/%s" % (r["type"].rsplit("/", 1)[-1], r["name"]) for r in self._group_resources(cluster)
               if r["type"] != VM]
        if self._own_group(cluster):
            group = self._group_exists(cluster)
            if group is not None and (group.get("tags") or {}).get(CLUSTER_TAG) == cluster:
                out.append("resourceGroups/%s" % group["name"])
        return sorted(out)

    def _foreign_in_group(self, cluster):
        """Resources of the cluster's own resource group the collection did not make for it (none when the group is
        the user's: those are never the collection's to count)."""
        if not self._own_group(cluster):
            return []
        resource = self.clients()[0]
        try:
            items = self._call(resource.resources.list_by_resource_group, self.group_for(cluster), listing=True)
        except NotFoundError:
            return []
        ours = set(i["id"].lower() for i in items if shapes.owned(i, cluster))
        # a node's OS disk carries no tags of its own: it is the VM's (managedBy) while the VM lives
        return [i for i in items if not shapes.owned(i, cluster) and (i.get("managedBy") or "").lower() not in ours]

    def kept_resources(self, cluster):
        group = self._group_exists(cluster) if self._own_group(cluster) else None
        foreign = self._foreign_in_group(cluster) if group is not None else []
        kept = ["%s/%s (not made by the collection for %s)" % (r["type"].rsplit("/", 1)[-1], r["name"], cluster)
                for r in foreign]
        if foreign:
            kept.append("resourceGroups/%s (it holds %s)" % (group["name"], ", ".join(sorted(r["name"] for r in foreign))))
        return kept

    def delete_cluster_resources(self, cluster, timeout=600):
        resource, compute, network = self.clients()
        own = self._own_group(cluster)
        if own:
            group = self._group_exists(cluster)
            if group is None or (group.get("tags") or {}).get(CLUSTER_TAG) != cluster \
                    or (group.get("tags") or {}).get(MANAGED_TAG) != MANAGED_VALUE:
                return []
            if self._foreign_in_group(cluster):
                # the group holds something else: only the cluster's own resources go, the group stays
                own = False
        # the VMs' self-stop role assignments first, whichever way the VMs go
        self._remove_self_stop(self._list(cluster, VM))
        if own:
            deleted = self.cluster_resources(cluster)
            self._lros([(group["name"], resource.resource_groups.begin_delete, (group["name"],))],
                       "resource group %s to delete" % group["name"], timeout=timeout)
            return deleted
        group = self.group_for(cluster)
        ops = {
            VM: compute.virtual_machines.begin_delete, NIC: network.network_interfaces.begin_delete,
            PIP: network.public_ip_addresses.begin_delete, DISK: compute.disks.begin_delete,
            AVSET: compute.availability_sets.delete, PPG: compute.proximity_placement_groups.delete,
            VNET: network.virtual_networks.begin_delete, NSG: network.network_security_groups.begin_delete,
            ASG: network.application_security_groups.begin_delete,
        }
        deleted = []
        items = self._group_resources(cluster)
        for rtype in DELETE_ORDER:
            these = [r for r in items if r["type"].lower() == rtype.lower()]
            if not these:
                continue
            if rtype in (AVSET, PPG):
                for r in these:
                    self._call(ops[rtype], group, r["name"])
            else:
                self._lros([(r["name"], ops[rtype], (group, r["name"])) for r in these], "%s to delete" % rtype,
                           timeout=timeout)
            deleted += ["%s/%s" % (rtype.rsplit("/", 1)[-1], r["name"]) for r in these]
        return deleted

    def describe(self, nodes=None, prepared=None, launch=None):
        info = super(AzureProvider, self).describe(nodes, prepared, launch)
        info.update(location=self.opts.get("location") or "", resource_group=self.opts.get("resource_group") or "")
        if nodes:
            info["locations"] = sorted(set(n.zone.split("-")[0] for n in nodes if n.zone))
        if prepared:
            info["images"] = prepared["images"]
        info["api_calls"] = self.calls
        return info


def _same_vnet(current, wanted):
    cur = current.get("properties") or {}
    want = wanted["properties"]
    subnets = dict((s.get("name"), s.get("properties") or {}) for s in cur.get("subnets") or [])
    have = subnets.get(shapes.SUBNET_NAME) or {}
    nsg_want = (want["subnets"][0]["properties"].get("networkSecurityGroup") or {}).get("id", "").lower()
    nsg_have = (have.get("networkSecurityGroup") or {}).get("id", "").lower()
    return (have.get("addressPrefix") == shapes.SUBNET_PREFIX and nsg_want == nsg_have
            and current.get("tags") == wanted["tags"])
