"""A test double of Azure Resource Manager and of the Entra ID token endpoint, on loopback over HTTPS.

Started by the tests (``ArmDouble()``); the azure-identity + azure-mgmt-* SDKs talk to it unchanged, through
``AZURE_AUTHORITY_HOST`` / ``authority_host`` and the ``endpoint_url`` of the Resource Manager root:

- HTTPS with a local CA made by ``trustme`` (azure-identity refuses an http authority and azure-core refuses
  bearer tokens over http); ``ca_file`` is the CA's PEM for ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE``.
- The token endpoint (OpenID discovery + client-credentials grant): a wrong secret is 401 ``invalid_client``;
  ARM calls need a token for ``<url>/.default`` (else 401 ``InvalidAuthenticationTokenAudience``).
- Resource Manager: resource groups, VMs, availability sets, proximity placement groups, disks, virtual
  networks + subnets, NSGs, public IPs, NICs, resource SKUs, marketplace images, usages, the provider's
  locations, and a resource group's resource list filtered by tag.
- Long-running operations as ARM runs them: 201/202 + ``Azure-AsyncOperation`` (and ``Location`` on deletes),
  the operation ``InProgress`` for ``lro_seconds`` and then ``Succeeded`` or ``Failed``; it finishes whether or
  not anybody polls (a killed client's operations still complete).
- Every PUT body is checked against the SDK's own model definitions (``_attr_to_rest_field`` of the
  azure-mgmt-compute / -network / -resource models): unknown members, wrong types, bad enum values and missing
  required members are 400 ``InvalidRequestContent``.
- Real ARM rules worth a failure: referencing a resource whose operation has not finished is
  ``ReferencedResourceNotProvisioned``; NIC, public IP, availability set and proximity placement group must be in
  the VM's location; an availability set needs the Aligned SKU for managed disks and cannot take a zonal VM;
  ``osProfile`` cannot change; Basic public IPs are refused; ``deleteOption`` defaults to Detach; a VM whose
  allocation failed stays (Failed) holding its NIC; resources in use cannot be deleted.
- Microsoft.Authorization, for the self-stop: a VM with ``identity.type`` SystemAssigned gets a ``principalId``
  (and ``tenantId``); role assignments (PUT / GET / DELETE of ``<scope>/providers/Microsoft.Authorization/
  roleAssignments/<GUID>``, the list at a scope with ``$filter=principalId eq '...'``) with ARM's rules: the name
  must be a GUID (``InvalidRoleAssignmentId``), the role definition must exist (``RoleDefinitionDoesNotExist``), a
  principal the directory does not know is ``PrincipalNotFound`` unless ``principalType`` is given, the same
  principal, role and scope twice is ``RoleAssignmentExists``; a caller without
  ``Microsoft.Authorization/roleAssignments/write`` (``permissions``: the ``actions`` / ``notActions`` the
  ``.../providers/Microsoft.Authorization/permissions`` read answers with) is ``AuthorizationFailed``. A deleted
  VM's role assignments stay (the tests check that teardown removes them).
- Faults to inject: ``alloc_fail`` {(location, zone or None)}, ``quota`` {(location, family): vCPU limit},
  ``throttle`` (a share of ARM calls answered 429 + ``Retry-After``), ``fail_ops`` {resource type: count}
  (operations that end Failed), ``restricted`` {(size, location)}.
- ``calls`` counts every request by ``METHOD /provider/type``, ``requests`` keeps (method, path) in order.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import os
import random
import re
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import trustme

SUBSCRIPTION = "00000000-0000-4000-8000-00000000a2e0"
TENANT = "11111111-1111-4111-8111-111111111111"
CLIENT_ID = "22222222-2222-4222-8222-222222222222"
CLIENT_SECRET = "double-secret-value"

LOCATIONS = {"eastus": "East US", "westus2": "West US 2", "southcentralus": "South Central US"}

# the role definitions the double knows (built-in GUIDs): Virtual Machine Contributor, Contributor, Owner
ROLE_DEFINITIONS = {"9980e02c-c2be-4d73-94e8-173b1dc7cf3c", "b24988ac-6180-42a0-ab88-20f7382dd24c",
                    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"}
# the Contributor role's permissions as the permissions read answers them (it may not assign roles)
CONTRIBUTOR = [{"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                                                 "Microsoft.Authorization/elevateAccess/Action",
                                                 "Microsoft.Blueprint/blueprintAssignments/write",
                                                 "Microsoft.Blueprint/blueprintAssignments/delete",
                                                 "Microsoft.Compute/galleries/share/action",
                                                 "Microsoft.Purview/consents/write",
                                                 "Microsoft.Purview/consents/delete"],
                "dataActions": [], "notDataActions": []}]

# size -> (family, vCPUs, accelerated networking, zones)
SIZES = {
    "Standard_ND96isr_H100_v5": ("standardNDSH100v5Family", 96, True, ["1", "2", "3"]),
    "Standard_NC24ads_A100_v4": ("standardNCADSA100v4Family", 24, True, ["1", "2", "3"]),
    "Standard_NC4as_T4_v3": ("standardNCASv3_T4Family", 4, True, ["1", "2", "3"]),
    "Standard_D2s_v3": ("standardDSv3Family", 2, False, ["1", "2", "3"]),
}
FAMILY_NAMES = {
    "standardNDSH100v5Family": "Standard NDSH100v5 Family vCPUs",
    "standardNCADSA100v4Family": "Standard NCADS_A100_v4 Family vCPUs",
    "standardNCASv3_T4Family": "Standard NCASv3_T4 Family vCPUs",
    "standardDSv3Family": "Standard DSv3 Family vCPUs",
}
# publisher:offer:sku -> versions
IMAGES = {
    ("microsoft-dsvm", "ubuntu-hpc", "2204"): ["22.04.2024101801", "22.04.2025030701"],
    ("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"): ["22.04.202501010"],
}


# -- body checks against the SDK's model definitions ------------------------------------------------------
def _models():
    import azure.mgmt.compute.models as compute
    import azure.mgmt.network.models as network
    import azure.mgmt.resource.resources.models as resources
    return {
        "resourcegroups": resources.ResourceGroup,
        "microsoft.compute/virtualmachines": compute.VirtualMachine,
        "microsoft.compute/availabilitysets": compute.AvailabilitySet,
        "microsoft.compute/proximityplacementgroups": compute.ProximityPlacementGroup,
        "microsoft.network/virtualnetworks": network.VirtualNetwork,
        "microsoft.network/virtualnetworks/subnets": network.Subnet,
        "microsoft.network/networksecuritygroups": network.NetworkSecurityGroup,
        "microsoft.network/publicipaddresses": network.PublicIPAddress,
        "microsoft.network/networkinterfaces": network.NetworkInterface,
        "microsoft.network/applicationsecuritygroups": network.ApplicationSecurityGroup,
    }


# sizes move faster than the SDK's enum: any string is a size
OPEN_ENUMS = ("VirtualMachineSizeTypes",)


def _fields(cls):
    cls()  # the SDK computes _attr_to_rest_field on first instantiation
    return dict((rf._rest_name, rf) for rf in cls._attr_to_rest_field.values())


def _describe(deserializer):
    """The SDK's deserializer chain -> ('model', cls) | ('list', d) | ('dict', d) | ('enum', cls) | ('prim', t)
    | ('union', [d...]) | ('any', None)."""
    if not isinstance(deserializer, functools.partial):
        return ("any", None)
    name = deserializer.func.__name__
    args = deserializer.args
    if name == "_deserialize_with_optional":
        return _describe(args[0])
    if name == "_deserialize_model":
        return ("model", args[0])
    if name == "_deserialize_sequence":
        return ("list", _describe(args[0]))
    if name == "_deserialize_dict":
        return ("dict", _describe(args[0]))
    if name == "_deserialize_with_union":
        return ("union", [_describe(d) for d in args[0]])
    if name == "_deserialize_default":
        target = args[0]
        if isinstance(target, type) and issubclass(target, Enum):
            return ("enum", target)
        return ("prim", target)
    return ("any", None)


def check_body(body, cls, path=""):
    """Problems of ``body`` as a request for model ``cls``, worded as ARM words them."""
    errors = []
    if not isinstance(body, dict):
        return ["Expected an object of type '%s' at path '%s'" % (cls.__name__, path or "$")]
    fields = _fields(cls)
    for key, value in body.items():
        rf = fields.get(key)
        where = "%s.%s" % (path, key) if path else key
        if rf is None:
            errors.append("Could not find member '%s' on object of type '%s'. Path '%s'" % (key, cls.__name__, where))
            continue
        if rf._visibility and not set(rf._visibility) & {"create", "update"}:
            # read-only in the SDK's model (the REST spec's readOnly): the service sets it, a request does not
            errors.append("Member '%s' of '%s' is read-only and cannot be set. Path '%s'" % (key, cls.__name__, where))
            continue
        if value is None:
            continue
        errors.extend(_check_value(value, _describe(rf._type), where))
    for name, rf in fields.items():
        visibility = rf._visibility or ["create"]
        if not rf._is_optional and "create" in visibility and name not in body:
            errors.append("Required property '%s' not found in JSON. Path '%s'" % (name, path or "$"))
    return errors


def _check_value(value, kind, where):
    tag, arg = kind
    if tag == "model":
        return check_body(value, arg, where)
    if tag == "list":
        if not isinstance(value, list):
            return ["Expected an array at path '%s', got %s" % (where, type(value).__name__)]
        out = []
        for i, item in enumerate(value):
            out.extend(_check_value(item, arg, "%s[%d]" % (where, i)))
        return out
    if tag == "dict":
        if not isinstance(value, dict):
            return ["Expected an object at path '%s', got %s" % (where, type(value).__name__)]
        out = []
        for key, item in value.items():
            out.extend(_check_value(item, arg, "%s.%s" % (where, key)))
        return out
    if tag == "union":
        enums = [a for t, a in arg if t == "enum"]
        if enums and isinstance(value, str):
            enum = enums[0]
            allowed = [str(e.value) for e in enum]
            if enum.__name__ not in OPEN_ENUMS and value.lower() not in [a.lower() for a in allowed]:
                return ["The value '%s' is not valid for '%s' at path '%s'; allowed: %s"
                        % (value, enum.__name__, where, ", ".join(allowed))]
            return []
        problems = [_check_value(value, k, where) for k in arg]
        return [] if any(not p for p in problems) else problems[0]
    if tag == "enum":
        return _check_value(value, ("union", [kind]), where)
    if tag == "prim":
        if arg is bool and not isinstance(value, bool):
            return ["Error converting value %r to type 'Boolean'. Path '%s'" % (value, where)]
        if arg is int and (isinstance(value, bool) or not isinstance(value, int)):
            return ["Error converting value %r to type 'Int32'. Path '%s'" % (value, where)]
        if arg is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return ["Error converting value %r to type 'Double'. Path '%s'" % (value, where)]
        if arg is str and not isinstance(value, str):
            return ["Error converting value %r to type 'String'. Path '%s'" % (value, where)]
    return []


class ArmError(Exception):
    def __init__(self, status, code, message, headers=None):
        super(ArmError, self).__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _props(res):
    return res.setdefault("properties", {})


def _ref(obj):
    return ((obj or {}).get("id") or "").lower()


class ArmDouble(object):
    def __init__(self, lro_seconds=0.05, retry_after="1", throttle=0.0, throttle_retry_after="0.1", seed=0):
        self.lro_seconds = lro_seconds
        self.retry_after = retry_after
        self.throttle = throttle
        self.throttle_retry_after = throttle_retry_after
        self.rand = random.Random(seed)
        self.alloc_fail = set()
        self.quota = {}
        self.fail_ops = Counter()
        self.restricted = set()
        self.clients = {CLIENT_ID: CLIENT_SECRET}
        self.subscription = SUBSCRIPTION
        self.resources = {}      # lower-case id -> resource dict
        self.groups = {}         # lower-case name -> resource group dict
        self.operations = {}     # id -> op dict
        self.tokens = {}         # token -> (client_id, scope)
        self.calls = Counter()
        self.requests = []
        self.bodies = []         # (key, body) of every PUT, for the tests' field tables
        self.principals = {}     # principal id -> the VM whose system-assigned identity it is
        self.role_assignments = {}  # lower-case id -> role assignment
        # what the caller may do (the permissions read's value): all, as an Owner; CONTRIBUTOR: no role assignments
        self.permissions = [{"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}]
        self.throttled = 0
        self.lock = threading.RLock()
        self.models = _models()
        self._dir = tempfile.mkdtemp(prefix="arm-double-")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = os.path.join(self._dir, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        double = self

        class Handler(_Handler):
            arm = double

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def env(self):
        """Environment for a process using the double (TLS trust + authority)."""
        return {"SSL_CERT_FILE": self.ca_file, "REQUESTS_CA_BUNDLE": self.ca_file, "CURL_CA_BUNDLE": self.ca_file,
                "AZURE_AUTHORITY_HOST": self.url}

    def add_network(self, group, vnet, subnet, location="eastus", prefix="10.77.0.0/24"):
        """A network of the user's own (bring your own subnet), made as if by hand; returns the subnet's id."""
        with self.lock:
            self.groups[group.lower()] = {"id": self.rg_id(group), "name": group, "location": location, "tags": {},
                                          "type": "Microsoft.Resources/resourceGroups",
                                          "properties": {"provisioningState": "Succeeded"}}
            rid = self.res_id(group, "Microsoft.Network/virtualNetworks", vnet)
            subnet_id = "%s/subnets/%s" % (rid, subnet)
            self.resources[rid.lower()] = {
                "id": rid, "name": vnet, "type": "Microsoft.Network/virtualNetworks", "location": location, "tags": {},
                "properties": {"provisioningState": "Succeeded", "addressSpace": {"addressPrefixes": [prefix]},
                               "subnets": [{"id": subnet_id, "name": subnet, "properties": {
                                   "addressPrefix": prefix, "provisioningState": "Succeeded"}}]}}
            return subnet_id

    def add_capacity_reservation_group(self, group, name, location, reservations):
        """A capacity reservation group made by hand in ``group`` (created if missing), with ``reservations``:
        ``[(size, zones, capacity)]``; returns the group's id."""
        with self.lock:
            if group.lower() not in self.groups:
                self.groups[group.lower()] = {"id": self.rg_id(group), "name": group, "location": location,
                                              "tags": {}, "type": "Microsoft.Resources/resourceGroups",
                                              "properties": {"provisioningState": "Succeeded"}}
            gid = self.res_id(group, "Microsoft.Compute/capacityReservationGroups", name)
            refs = []
            zones = sorted(set(z for _s, zs, _c in reservations for z in zs))
            for i, (size, rzones, capacity) in enumerate(reservations):
                rid = "%s/capacityReservations/r%d" % (gid, i)
                refs.append({"id": rid})
                self.resources[rid.lower()] = {
                    "id": rid, "name": "r%d" % i, "type": "Microsoft.Compute/capacityReservationGroups/"
                                                          "capacityReservations",
                    "location": location, "sku": {"name": size, "capacity": capacity}, "zones": list(rzones),
                    "properties": {"provisioningState": "Succeeded", "virtualMachinesAssociated": []}}
            self.resources[gid.lower()] = {
                "id": gid, "name": name, "type": "Microsoft.Compute/capacityReservationGroups", "location": location,
                "zones": zones, "tags": {}, "properties": {"capacityReservations": refs,
                                                           "virtualMachinesAssociated": []}}
            return gid

    def _reserve(self, rid, p, size, location, zones):
        """A VM naming a capacity reservation group takes an instance of a reservation of its size and zone: an
        error when the group does not exist or has none free (the allocation fails)."""
        ref = ((p.get("capacityReservation") or {}).get("capacityReservationGroup") or {}).get("id")
        if not ref:
            return None
        group = self.resources.get(ref.lower())
        if group is None or group["type"] != "Microsoft.Compute/capacityReservationGroups":
            raise ArmError(404, "NotFound", "The capacity reservation group %s was not found." % ref)
        if group["location"] != location:
            raise ArmError(400, "InvalidParameter", "The capacity reservation group %s is in %s, not %s."
                           % (ref, group["location"], location))
        for cref in _props(group)["capacityReservations"]:
            res = self.resources[cref["id"].lower()]
            if res["sku"]["name"].lower() != size.lower() or sorted(res["zones"]) != sorted(zones):
                continue
            held = _props(res)["virtualMachinesAssociated"]
            if {"id": rid} in held:
                return None
            if len(held) < res["sku"]["capacity"]:
                held.append({"id": rid})
                return None
            raise ArmError(409, "AllocationFailed", "Allocation failed. The capacity reservation group %s has no "
                                                    "capacity left for %s." % (ref, size))
        raise ArmError(400, "InvalidParameter", "The capacity reservation group %s has no reservation of %s in "
                                                "zone(s) %s." % (ref, size, ", ".join(zones) or "none"))

    def reset_counts(self):
        with self.lock:
            self.calls.clear()
            del self.requests[:]
            del self.bodies[:]

    # -- state helpers ----------------------------------------------------------------------------------
    def rg_id(self, rg):
        return "/subscriptions/%s/resourceGroups/%s" % (self.subscription, rg)

    def res_id(self, rg, rtype, name):
        return "%s/providers/%s/%s" % (self.rg_id(rg), rtype, name)

    def in_group(self, rg, rtype=None):
        prefix = (self.rg_id(rg) + "/providers/").lower()
        with self.lock:
            self._tick()
            return [copy.deepcopy(r) for rid, r in sorted(self.resources.items()) if rid.startswith(prefix)
                    and (rtype is None or r["type"].lower() == rtype.lower())]

    def tagged(self, tag, value):
        with self.lock:
            self._tick()
            out = [copy.deepcopy(r) for r in self.resources.values() if (r.get("tags") or {}).get(tag) == value]
            out += [copy.deepcopy(g) for g in self.groups.values() if (g.get("tags") or {}).get(tag) == value]
            return out

    def _tick(self):
        now = time.monotonic()
        for op in list(self.operations.values()):
            if op["status"] == "InProgress" and now >= op["due"]:
                self._finish(op)

    def _finish(self, op):
        error = None
        try:
            error = op["complete"]()
        except ArmError as exc:
            error = {"code": exc.code, "message": exc.message}
        if error:
            op["status"] = "Failed"
            op["error"] = error
        else:
            op["status"] = "Succeeded"

    def _operation(self, namespace, location, complete, fail=None):
        """Start an LRO whose ``complete()`` runs when it is due; returns the headers to answer with."""
        op_id = uuid.uuid4().hex
        op = {"id": op_id, "status": "InProgress", "due": time.monotonic() + self.lro_seconds, "error": None}

        def run():
            if fail:
                return fail()
            return complete()
        op["complete"] = run
        self.operations[op_id] = op
        url = "%s/subscriptions/%s/providers/%s/locations/%s/operations/%s?api-version=2024-01-01" % (
            self.url, self.subscription, namespace, location or "global", op_id)
        return {"Azure-AsyncOperation": url, "Retry-After": self.retry_after}, op

    # -- request dispatch ----------------------------------------------------------------------------------
    def handle(self, method, raw_path, headers, body):
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path
        query = dict(urllib.parse.parse_qsl(parsed.query))
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[1] in ("v2.0", "oauth2"):
            return self._identity(method, parts, body)
        if parts == ["metadata", "endpoints"]:
            # the cloud metadata document azure-cli-core reads for a custom cloud (azure.azcollection's
            # cloud_environment: <URL>)
            return 200, {}, {"name": "ArmDouble", "resourceManager": self.url + "/", "portal": self.url,
                             "authentication": {"loginEndpoint": self.url + "/", "audiences": [self.url + "/"],
                                                "tenant": "common", "identityProvider": "AAD"},
                             "graphEndpoint": self.url + "/", "gallery": self.url + "/",
                             "suffixes": {"storage": "core.windows.net", "keyVaultDns": "vault.azure.net",
                                          "acrLoginServer": "azurecr.io"}}
        key = self._call_key(method, parts)
        with self.lock:
            self.calls[key] += 1
            self.requests.append((method, path))
            if method == "PUT" and isinstance(body, dict):
                self.bodies.append((key, copy.deepcopy(body)))
        self._authorize(headers)
        if self.throttle and not key.endswith("/operations") and self.rand.random() < self.throttle:
            with self.lock:
                self.throttled += 1
            raise ArmError(429, "TooManyRequests", "The request is being throttled.",
                           {"Retry-After": self.throttle_retry_after})
        if len(parts) < 2 or parts[0].lower() != "subscriptions":
            raise ArmError(404, "NotFound", "no route for %s" % path)
        if parts[1] != self.subscription:
            raise ArmError(404, "SubscriptionNotFound", "The subscription '%s' could not be found." % parts[1])
        with self.lock:
            self._tick()
            return self._route(method, parts[2:], query, body)

    @staticmethod
    def _call_key(method, parts):
        low = [p.lower() for p in parts]
        if "operations" in low:
            return "%s operations" % method
        if "providers" in low:
            i = len(low) - 1 - low[::-1].index("providers")
            rest = parts[i + 1:]
            return "%s %s" % (method, "/".join(rest[:2] + ([rest[3]] if len(rest) > 3 else [])))
        if "resourcegroups" in low:
            return "%s resourceGroups%s" % (method, "/resources" if low[-1] == "resources" else "")
        return "%s %s" % (method, "/".join(parts[2:3]))

    def _authorize(self, headers):
        auth = headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            raise ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        token = self.tokens.get(auth[7:])
        if token is None:
            raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if token[1] != self.url + "/.default":
            raise ArmError(401, "InvalidAuthenticationTokenAudience",
                           "The access token has been obtained for wrong audience or resource '%s'." % token[1])

    def _identity(self, method, parts, body):
        tenant = parts[0]
        if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            base = "%s/%s" % (self.url, tenant)
            return 200, {}, {"token_endpoint": base + "/oauth2/v2.0/token",
                             "authorization_endpoint": base + "/oauth2/v2.0/authorize",
                             "issuer": base + "/v2.0", "tenant_region_scope": "NA"}
        if parts[1:] == ["oauth2", "v2.0", "token"] and method == "POST":
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8")))
            with self.lock:
                self.calls["POST token"] += 1
            if tenant != TENANT:
                return 400, {}, {"error": "invalid_request",
                                 "error_description": "AADSTS90002: Tenant '%s' not found." % tenant}
            if self.clients.get(form.get("client_id")) != form.get("client_secret"):
                return 401, {}, {"error": "invalid_client",
                                 "error_description": "AADSTS7000215: Invalid client secret provided."}
            token = "tok-%s" % uuid.uuid4().hex
            with self.lock:
                self.tokens[token] = (form.get("client_id"), form.get("scope", "").split()[0])
            return 200, {}, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
                             "access_token": token}
        return 404, {}, {"error": "not_found"}

    def _route(self, method, parts, query, body):
        low = [p.lower() for p in parts]
        if "microsoft.authorization" in low:
            return self._authorization(method, parts, query, body)
        # subscription-level providers
        if low[:1] == ["providers"]:
            return self._subscription_provider(method, parts[1:], query)
        if low[:1] != ["resourcegroups"] or len(parts) < 2:
            raise ArmError(404, "NotFound", "no route for %s" % "/".join(parts))
        rg = parts[1]
        if len(parts) == 2:
            return self._group(method, rg, body)
        group = self.groups.get(rg.lower())
        if group is None:
            raise ArmError(404, "ResourceGroupNotFound", "Resource group '%s' could not be found." % rg)
        if low[2] == "resources" and len(parts) == 3:
            return 200, {}, {"value": self._group_resources(rg, query)}
        if low[2] != "providers" or len(parts) < 5:
            raise ArmError(404, "NotFound", "no route")
        rtype = "%s/%s" % (parts[3], parts[4])
        if len(parts) == 5:
            if method != "GET":
                raise ArmError(405, "MethodNotAllowed", "")
            items = self.in_group(rg, rtype)
            if rtype.lower() == "microsoft.compute/virtualmachines" and query.get("$expand", "").lower() == "instanceview":
                items = [dict(r, properties=dict(_props(r), instanceView=self._instance_view(r))) for r in items]
            return 200, {}, {"value": items}
        name = parts[5]
        if len(parts) == 6:
            return self._resource(method, rg, rtype, name, body, query)
        if len(parts) == 7 and low[6] == "start" and method == "POST":
            return self._vm_start(rg, name)
        if len(parts) == 8 and low[6] == "capacityreservations" and method == "GET":
            return 200, {}, self._get("%s/capacityReservations/%s" % (self.res_id(rg, rtype, name), parts[7]))
        if len(parts) == 8 and low[6] == "subnets":
            vnet = self._get(self.res_id(rg, rtype, name))
            if method == "PUT":
                return self._put_subnet(vnet, parts[7], body)
            if method != "GET":
                raise ArmError(405, "MethodNotAllowed", "only GET and PUT of a subnet are served here")
            for subnet in _props(vnet).get("subnets") or []:
                if subnet["name"].lower() == low[7]:
                    return 200, {}, subnet
            raise ArmError(404, "NotFound", "Resource %s/subnets/%s not found." % (name, parts[7]))
        raise ArmError(404, "NotFound", "no route")

    # -- Microsoft.Authorization ----------------------------------------------------------------------------------
    def _authorization(self, method, parts, query, body):
        low = [p.lower() for p in parts]
        i = low.index("microsoft.authorization")
        scope = "/subscriptions/%s%s" % (self.subscription, "".join("/" + p for p in parts[:i - 1]))
        rest = low[i + 1:]
        if rest == ["permissions"] and method == "GET":
            return 200, {}, {"value": copy.deepcopy(self.permissions)}
        if rest[:1] != ["roleassignments"]:
            raise ArmError(404, "NotFound", "no route for %s" % "/".join(parts))
        if len(rest) == 1 and method == "GET":
            match = re.search(r"principalId eq '([^']+)'", query.get("$filter", ""))
            found = [a for a in self.role_assignments.values()
                     if (scope.lower() + "/").startswith(_props(a)["scope"].lower() + "/")
                     or _props(a)["scope"].lower().startswith(scope.lower() + "/")]
            if match:
                found = [a for a in found if _props(a)["principalId"] == match.group(1)]
            return 200, {}, {"value": copy.deepcopy(found)}
        if len(rest) != 2:
            raise ArmError(404, "NotFound", "no route for %s" % "/".join(parts))
        name = parts[i + 2]
        rid = "%s/providers/Microsoft.Authorization/roleAssignments/%s" % (scope, name)
        existing = self.role_assignments.get(rid.lower())
        if method == "GET":
            if existing is None:
                raise ArmError(404, "RoleAssignmentNotFound", "The role assignment '%s' is not found." % name)
            return 200, {}, existing
        if method == "DELETE":
            self._may("Microsoft.Authorization/roleAssignments/delete", scope)
            if existing is None:
                return 204, {}, None
            del self.role_assignments[rid.lower()]
            return 200, {}, existing
        if method != "PUT":
            raise ArmError(405, "MethodNotAllowed", "")
        self._may("Microsoft.Authorization/roleAssignments/write", scope)
        try:
            uuid.UUID(name)
        except ValueError:
            raise ArmError(400, "InvalidRoleAssignmentId", "The role assignment ID '%s' is not valid. The role "
                                                           "assignment ID must be a GUID." % name)
        p = (body or {}).get("properties") or {}
        role, principal = p.get("roleDefinitionId") or "", p.get("principalId") or ""
        if role.rsplit("/", 1)[-1].lower() not in ROLE_DEFINITIONS or not role.lower().startswith(
                "/subscriptions/%s/providers/microsoft.authorization/roledefinitions/" % self.subscription):
            raise ArmError(400, "RoleDefinitionDoesNotExist",
                           "The specified role definition with ID '%s' does not exist." % role.rsplit("/", 1)[-1])
        if principal not in self.principals and not p.get("principalType"):
            raise ArmError(400, "PrincipalNotFound", "Principal %s does not exist in the directory %s. Check that "
                           "you have the correct principal ID. If you are creating this principal and then "
                           "immediately assigning a role, this error might be related to a replication delay. In "
                           "this case, set the role assignment principalType property to a value, such as "
                           "ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype" % (principal, TENANT))
        for other in self.role_assignments.values():
            q = _props(other)
            if other["id"].lower() != rid.lower() and q["scope"].lower() == scope.lower() \
                    and q["principalId"] == principal and q["roleDefinitionId"].lower() == role.lower():
                raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
        now = time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime())
        res = {"properties": {"roleDefinitionId": role, "principalId": principal,
                              "principalType": p.get("principalType") or "ServicePrincipal", "scope": scope,
                              "condition": None, "conditionVersion": None, "createdOn": now, "updatedOn": now,
                              "createdBy": None, "updatedBy": CLIENT_ID, "delegatedManagedIdentityResourceId": None,
                              "description": p.get("description")},
               "id": rid, "type": "Microsoft.Authorization/roleAssignments", "name": name}
        self.role_assignments[rid.lower()] = res
        return (200 if existing else 201), {}, res

    def _may(self, action, scope):
        allowed = any(any(re.fullmatch(re.escape(a).replace(r"\*", ".*"), action, re.I) for a in perm["actions"])
                      and not any(re.fullmatch(re.escape(a).replace(r"\*", ".*"), action, re.I)
                                  for a in perm["notActions"]) for perm in self.permissions)
        if not allowed:
            message = ("The client '%s' with object id '%s' does not have authorization to perform action '%s' "
                       "over scope '%s' or the scope is invalid. If access was recently granted, please refresh your "
                       "credentials." % (CLIENT_ID, CLIENT_ID, action, scope))
            raise ArmError(403, "AuthorizationFailed", message)

    def _subscription_provider(self, method, parts, query):
        low = [p.lower() for p in parts]
        if low == ["microsoft.compute"]:
            locations = [LOCATIONS[loc] for loc in LOCATIONS]
            return 200, {}, {"id": "/subscriptions/%s/providers/Microsoft.Compute" % self.subscription,
                             "namespace": "Microsoft.Compute", "registrationState": "Registered",
                             "resourceTypes": [{"resourceType": "virtualMachines", "locations": locations}]}
        if low == ["microsoft.compute", "skus"]:
            match = re.search(r"location eq '([^']+)'", query.get("$filter", ""))
            wanted = [match.group(1).lower()] if match else list(LOCATIONS)
            return 200, {}, {"value": [self._sku(size, loc) for loc in wanted if loc in LOCATIONS for size in SIZES]}
        if len(low) >= 3 and low[:2] == ["microsoft.compute", "locations"]:
            location = low[2]
            if low[3:] == ["usages"]:
                return 200, {}, {"value": self._usages(location)}
            if low[3:] == ["vmsizes"]:
                return 200, {}, {"value": [{"name": size, "numberOfCores": vcpus, "osDiskSizeInMB": 1047552,
                                            "resourceDiskSizeInMB": 0, "memoryInMB": vcpus * 8192,
                                            "maxDataDiskCount": 32}
                                           for size, (_f, vcpus, _a, _z) in sorted(SIZES.items())]}
            if low[3:4] == ["publishers"] and len(low) >= 12:
                key = (low[4], low[8], low[10])
                versions = IMAGES.get(key) if location in LOCATIONS else None
                if versions is None:
                    raise ArmError(404, "NotFound", "Artifact: VMImage was not found.")
                if len(low) == 12:
                    return 200, {}, [{"name": v, "location": location, "id": "/x/%s" % v} for v in versions]
                if low[12] not in versions:
                    raise ArmError(404, "NotFound", "Artifact: VMImage was not found.")
                return 200, {}, {"name": low[12], "location": location, "id": "/images/%s" % low[12],
                                 "properties": {"osImage": {"operatingSystem": "Linux"}}}
        if len(low) >= 5 and low[1] == "locations" and low[3] == "operations":
            op = self.operations.get(parts[4])
            if op is None:
                raise ArmError(404, "NotFound", "operation %s not found" % parts[4])
            body = {"id": op["id"], "name": op["id"], "status": op["status"]}
            if op["error"]:
                body["error"] = op["error"]
            headers = {"Retry-After": self.retry_after} if op["status"] == "InProgress" else {}
            return 200, headers, body
        raise ArmError(404, "NotFound", "no route for providers/%s" % "/".join(parts))

    def _sku(self, size, location):
        family, vcpus, accel, zones = SIZES[size]
        restrictions = []
        if (size, location) in self.restricted:
            restrictions.append({"type": "Location", "values": [location], "reasonCode": "NotAvailableForSubscription",
                                 "restrictionInfo": {"locations": [location]}})
        return {"resourceType": "virtualMachines", "name": size, "tier": "Standard", "family": family,
                "locations": [location], "locationInfo": [{"location": location, "zones": zones}],
                "capabilities": [{"name": "vCPUs", "value": str(vcpus)},
                                 {"name": "AcceleratedNetworkingEnabled", "value": str(accel)}],
                "restrictions": restrictions}

    def _usages(self, location):
        used = Counter()
        for r in self.resources.values():
            if r["type"] == "Microsoft.Compute/virtualMachines" and r["location"] == location:
                size = _props(r)["hardwareProfile"]["vmSize"]
                used[SIZES[size][0]] += SIZES[size][1]
        return [{"unit": "Count", "currentValue": used[f], "limit": self.quota.get((location, f), 1000),
                 "name": {"value": f, "localizedValue": FAMILY_NAMES[f]}} for f in FAMILY_NAMES]

    # -- resource groups ------------------------------------------------------------------------------------------
    def _group(self, method, rg, body):
        key = rg.lower()
        group = self.groups.get(key)
        if method in ("GET", "HEAD"):
            if group is None:
                raise ArmError(404, "ResourceGroupNotFound", "Resource group '%s' could not be found." % rg)
            return (200, {}, group) if method == "GET" else (204, {}, None)
        if method == "PUT":
            self._validate("resourcegroups", body)
            if body.get("location") not in LOCATIONS:
                raise ArmError(400, "LocationNotAvailableForResourceGroup",
                               "The provided location '%s' is not available for resource group." % body.get("location"))
            status = 200 if group else 201
            group = {"id": self.rg_id(rg), "name": rg, "type": "Microsoft.Resources/resourceGroups",
                     "location": body["location"], "tags": body.get("tags") or {},
                     "properties": {"provisioningState": "Succeeded"}}
            self.groups[key] = group
            return status, {}, group
        if method == "DELETE":
            if group is None:
                return 204, {}, None
            group["properties"]["provisioningState"] = "Deleting"

            def complete():
                prefix = (self.rg_id(rg) + "/").lower()
                for rid in [r for r in self.resources if r.startswith(prefix)]:
                    del self.resources[rid]
                self.groups.pop(key, None)
            headers, _op = self._operation("Microsoft.Resources", "global", complete)
            headers["Location"] = headers["Azure-AsyncOperation"]
            return 202, headers, None
        raise ArmError(405, "MethodNotAllowed", "")

    def _group_resources(self, rg, query):
        items = self.in_group(rg)
        flt = query.get("$filter", "")
        name = re.search(r"tagName eq '([^']+)'", flt)
        value = re.search(r"tagValue eq '([^']+)'", flt)
        if name:
            items = [r for r in items if name.group(1) in (r.get("tags") or {})
                     and (not value or r["tags"][name.group(1)] == value.group(1))]
        return [{"id": r["id"], "name": r["name"], "type": r["type"], "location": r.get("location"),
                 "tags": r.get("tags") or {}} for r in items]

    # -- generic resources ---------------------------------------------------------------------------------------
    def _get(self, rid):
        res = self.resources.get(rid.lower())
        if res is None:
            raise ArmError(404, "ResourceNotFound", "The Resource '%s' was not found." % rid)
        return res

    def _validate(self, kind, body):
        problems = check_body(body, self.models[kind])
        if problems:
            raise ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be "
                                                         "deserialized: %s" % "; ".join(problems))

    def _resource(self, method, rg, rtype, name, body, query):
        rid = self.res_id(rg, rtype, name)
        kind = rtype.lower()
        existing = self.resources.get(rid.lower())
        if method == "GET":
            res = self._get(rid)
            if kind == "microsoft.compute/virtualmachines" and query.get("$expand", "").lower() == "instanceview":
                res = dict(res, properties=dict(_props(res), instanceView=self._instance_view(res)))
            return 200, {}, res
        if method == "DELETE":
            if existing is None:
                return 204, {}, None
            return self._delete(kind, existing)
        if method != "PUT":
            raise ArmError(405, "MethodNotAllowed", "")
        if kind not in self.models:
            raise ArmError(400, "NoRegisteredProviderFound", "No registered resource provider found for %s" % rtype)
        self._validate(kind, body)
        if existing is not None and _props(existing).get("provisioningState") in ("Creating", "Updating", "Deleting"):
            raise ArmError(409, "AnotherOperationInProgress",
                           "Operation on %s is not allowed: another operation is in progress." % name)
        res = copy.deepcopy(body)
        res.update(id=rid, name=name, type=self._canonical_type(kind))
        location = (res.get("location") or "").lower()
        if location and location not in LOCATIONS:
            raise ArmError(400, "LocationNotAvailableForResourceType",
                           "The provided location '%s' is not available for resource type '%s'." % (location, rtype))
        handler = getattr(self, "_put_%s" % kind.split("/")[1])
        return handler(rid, res, existing)

    @staticmethod
    def _canonical_type(kind):
        return {
            "microsoft.compute/virtualmachines": "Microsoft.Compute/virtualMachines",
            "microsoft.compute/availabilitysets": "Microsoft.Compute/availabilitySets",
            "microsoft.compute/proximityplacementgroups": "Microsoft.Compute/proximityPlacementGroups",
            "microsoft.compute/disks": "Microsoft.Compute/disks",
            "microsoft.network/virtualnetworks": "Microsoft.Network/virtualNetworks",
            "microsoft.network/networksecuritygroups": "Microsoft.Network/networkSecurityGroups",
            "microsoft.network/publicipaddresses": "Microsoft.Network/publicIPAddresses",
            "microsoft.network/networkinterfaces": "Microsoft.Network/networkInterfaces",
            "microsoft.network/applicationsecuritygroups": "Microsoft.Network/applicationSecurityGroups",
        }[kind]

    def _store_lro(self, rid, res, existing, namespace, fail_kind=None, complete=None):
        """Store ``res`` as Creating/Updating; the operation ends Succeeded (or Failed by injection)."""
        _props(res)["provisioningState"] = "Updating" if existing else ("Creating" if "Compute" in namespace
                                                                        else "Updating")
        if namespace == "Microsoft.Network":
            _network_answer(res, existing)
        self.resources[rid.lower()] = res

        def done():
            current = self.resources.get(rid.lower())
            if current is None:
                return {"code": "ResourceNotFound", "message": "the resource was deleted"}
            error = complete(current) if complete else None
            _props(current)["provisioningState"] = "Failed" if error else "Succeeded"
            return error

        fail = None
        if fail_kind and self.fail_ops.get(fail_kind):
            self.fail_ops[fail_kind] -= 1

            def fail():
                current = self.resources.get(rid.lower())
                if current is not None:
                    _props(current)["provisioningState"] = "Failed"
                return {"code": "InternalOperationError", "message": "The operation failed (injected by the double)."}
        headers, _op = self._operation(namespace, res.get("location"), done, fail)
        return (200 if existing else 201), headers, res

    def _check_ref(self, ref, what, location=None):
        res = self.resources.get(_ref(ref))
        if res is None:
            raise ArmError(400, "InvalidResourceReference", "Resource %s referenced by %s was not found." %
                           ((ref or {}).get("id"), what))
        if _props(res).get("provisioningState") not in ("Succeeded",):
            raise ArmError(400, "ReferencedResourceNotProvisioned",
                           "Cannot proceed with operation because resource %s used by resource %s is not in Succeeded "
                           "state. Resource is in %s state and the last operation that updated/is updating the "
                           "resource is PutOperation." % (res["id"], what, _props(res).get("provisioningState")))
        if location and res.get("location") and res["location"] != location:
            raise ArmError(400, "InvalidResourceReference" if "Network" in res["type"] else "BadRequest",
                           "Resource %s is in location %s, not %s like %s."
                           % (res["id"], res["location"], location, what))
        return res

    def _put_virtualnetworks(self, rid, res, existing):
        for subnet in _props(res).get("subnets") or []:
            subnet["id"] = "%s/subnets/%s" % (rid, subnet["name"])
            subnet.setdefault("properties", {})["provisioningState"] = "Succeeded"
            nsg = subnet["properties"].get("networkSecurityGroup")
            if nsg:
                self._check_ref(nsg, rid, res.get("location"))
        return self._store_lro(rid, res, existing, "Microsoft.Network", "virtualNetworks")

    def _put_subnet(self, vnet, name, body):
        """PUT of a subnet on its own (a long-running operation of its virtual network)."""
        self._validate("microsoft.network/virtualnetworks/subnets", body)
        subnet = copy.deepcopy(body)
        subnet.update(id="%s/subnets/%s" % (vnet["id"], name), name=name)
        props = subnet.setdefault("properties", {})
        if props.get("networkSecurityGroup"):
            self._check_ref(props["networkSecurityGroup"], subnet["id"], vnet.get("location"))
        props["provisioningState"] = "Succeeded"
        subnets = [s for s in _props(vnet).get("subnets") or [] if s["name"].lower() != name.lower()]
        existed = len(subnets) != len(_props(vnet).get("subnets") or [])
        _props(vnet)["subnets"] = subnets + [subnet]
        headers, _op = self._operation("Microsoft.Network", vnet.get("location"), lambda: None)
        return (200 if existed else 201), headers, subnet

    def _put_networksecuritygroups(self, rid, res, existing):
        seen = set()
        for rule in _props(res).get("securityRules") or []:
            p = rule.get("properties") or {}
            prio = (p.get("direction"), p.get("priority"))
            if not 100 <= (p.get("priority") or 0) <= 4096:
                raise ArmError(400, "SecurityRuleInvalidPriority", "Rule %s has priority %s outside 100-4096."
                               % (rule.get("name"), p.get("priority")))
            if prio in seen:
                raise ArmError(400, "SecurityRuleConflict", "Rules with the same priority %s and direction %s."
                               % prio[::-1])
            seen.add(prio)
            for key in ("sourceApplicationSecurityGroups", "destinationApplicationSecurityGroups"):
                for ref in p.get(key) or []:
                    self._check_ref(ref, "%s/securityRules/%s" % (rid, rule.get("name")), res.get("location"))
            mixed = p.get("sourceAddressPrefix") or p.get("sourceAddressPrefixes")
            if p.get("sourceApplicationSecurityGroups") and mixed:
                raise ArmError(400, "SecurityRuleParameterContainsUnsupportedValue",
                               "Security rule %s has both a source address prefix and source application security "
                               "groups." % rule.get("name"))
        # as ARM answers (azure-sdk-for-python's recorded session
        # sdk/network/azure-mgmt-network/tests/recordings/test_mgmt_network.test_network_security_groups.yaml):
        # every rule with id, etag, type, provisioningState and the four list members, [] when the singular one was
        # sent; the group with etag, resourceGuid and its six defaultSecurityRules
        etag = 'W/"%s"' % uuid.uuid4()
        for rule in _props(res).get("securityRules") or []:
            rule.update(id="%s/securityRules/%s" % (rid, rule.get("name")), etag=etag,
                        type="Microsoft.Network/networkSecurityGroups/securityRules")
            p = rule.setdefault("properties", {})
            p["provisioningState"] = "Succeeded"
            for key in ("sourcePortRanges", "destinationPortRanges", "sourceAddressPrefixes",
                        "destinationAddressPrefixes"):
                p.setdefault(key, [])
        res["etag"] = etag
        _props(res)["resourceGuid"] = _props(existing).get("resourceGuid") if existing else str(uuid.uuid4())
        _props(res)["defaultSecurityRules"] = _default_security_rules(rid, etag)
        if existing:
            _props(res)["networkInterfaces"] = _props(existing).get("networkInterfaces") or []
        return self._store_lro(rid, res, existing, "Microsoft.Network", "networkSecurityGroups")

    def _put_applicationsecuritygroups(self, rid, res, existing):
        # as ARM answers: etag, resourceGuid and provisioningState (the SDK's ApplicationSecurityGroup read-only
        # members); membership is seen from the NICs, not listed on the group
        return self._store_lro(rid, res, existing, "Microsoft.Network", "applicationSecurityGroups")

    def _put_publicipaddresses(self, rid, res, existing):
        if ((res.get("sku") or {}).get("name") or "Basic").lower() != "standard":
            raise ArmError(400, "BasicSkuPublicIpIsRetired",
                           "Basic SKU public IP addresses can no longer be created; use the Standard SKU.")
        p = _props(res)
        if existing:
            p["ipAddress"] = _props(existing).get("ipAddress")
            p["ipConfiguration"] = _props(existing).get("ipConfiguration")
        else:
            p["ipAddress"] = "20.%d.%d.%d" % (self.rand.randrange(1, 250), self.rand.randrange(1, 250),
                                              self.rand.randrange(1, 250))
        return self._store_lro(rid, res, existing, "Microsoft.Network", "publicIPAddresses")

    def _put_networkinterfaces(self, rid, res, existing):
        p = _props(res)
        location = res.get("location")
        if p.get("networkSecurityGroup"):
            self._check_ref(p["networkSecurityGroup"], rid, location)
        taken = set(_props(n).get("_ip") for n in self.resources.values() if n["type"].endswith("networkInterfaces"))
        for i, conf in enumerate(p.get("ipConfigurations") or []):
            cp = conf.setdefault("properties", {})
            conf["id"] = "%s/ipConfigurations/%s" % (rid, conf.get("name"))
            subnet_id = _ref(cp.get("subnet"))
            vnet_id = subnet_id.split("/subnets/")[0]
            vnet = self.resources.get(vnet_id)
            subnets = dict((s["id"].lower(), s) for s in _props(vnet).get("subnets") or []) if vnet else {}
            if subnet_id not in subnets:
                raise ArmError(400, "InvalidResourceReference", "Resource %s referenced by resource %s was not found."
                               % ((cp.get("subnet") or {}).get("id"), rid))
            self._check_ref({"id": vnet_id}, rid, location)
            for ref in cp.get("applicationSecurityGroups") or []:
                asg = self._check_ref(ref, rid, location)
                # ARM: every NIC of an application security group is in the virtual network of its first one
                for other in self.resources.values():
                    if not other["type"].endswith("networkInterfaces") or other["id"].lower() == rid.lower():
                        continue
                    for oc in _props(other).get("ipConfigurations") or []:
                        ocp = oc.get("properties") or {}
                        if asg["id"].lower() in [_ref(r) for r in ocp.get("applicationSecurityGroups") or []] \
                                and _ref(ocp.get("subnet")).split("/subnets/")[0] != vnet_id:
                            raise ArmError(400, "ApplicationSecurityGroupsOfIpConfigurationInDifferentVnets",
                                           "Application security group %s has IP configurations in virtual "
                                           "networks %s and %s." % (asg["id"], _ref(ocp.get("subnet")), vnet_id))
            if cp.get("publicIPAddress"):
                pip = self._check_ref(cp["publicIPAddress"], rid, location)
                holder = _props(pip).get("ipConfiguration")
                if holder and not _ref(holder).startswith(rid.lower()):
                    raise ArmError(400, "PublicIPAddressInUse", "Public IP %s is in use by %s"
                                   % (pip["id"], holder["id"]))
                _props(pip)["ipConfiguration"] = {"id": conf["id"]}
            if existing:
                cp["privateIPAddress"] = ((_props(existing).get("ipConfigurations") or [{}])[i].get("properties")
                                          or {}).get("privateIPAddress")
            else:
                # the subnet's first free address; Azure keeps the first four of every subnet for itself
                prefix = (subnets[subnet_id].get("properties") or {}).get("addressPrefix") or "10.42.0.0/16"
                hosts = ipaddress.ip_network(prefix, strict=False)
                n = 4
                while str(hosts[n]) in taken:
                    n += 1
                cp["privateIPAddress"] = str(hosts[n])
                p["_ip"] = cp["privateIPAddress"]
        if existing:
            p["virtualMachine"] = _props(existing).get("virtualMachine")
            p["_ip"] = _props(existing).get("_ip")
        # what ARM fills in on every NIC
        p.setdefault("dnsSettings", {"dnsServers": [], "appliedDnsServers": []})
        p.setdefault("enableIPForwarding", False)
        return self._store_lro(rid, res, existing, "Microsoft.Network", "networkInterfaces")

    def _put_proximityplacementgroups(self, rid, res, existing):
        _props(res)["provisioningState"] = "Succeeded"
        self.resources[rid.lower()] = res
        return (200 if existing else 201), {}, res

    def _put_availabilitysets(self, rid, res, existing):
        p = _props(res)
        if p.get("proximityPlacementGroup"):
            self._check_ref(p["proximityPlacementGroup"], rid, res.get("location"))
        if existing:
            p["virtualMachines"] = _props(existing).get("virtualMachines") or []
        p["provisioningState"] = "Succeeded"
        self.resources[rid.lower()] = res
        return 200, {}, res  # ARM answers 200 for a new availability set too

    @staticmethod
    def _check_priority(p):
        """The Spot rules of the VirtualMachineProperties text: ``evictionPolicy`` ("For Azure Spot virtual machines,
        both 'Deallocate' and 'Delete' are supported") and ``billingProfile`` ("the billing related details of a
        Azure Spot VM") belong to Spot VMs only, and ``maxPrice`` is -1 ("the VM should not be evicted for price
        reasons") or a price above zero with up to 5 decimals."""
        priority = p.get("priority") or "Regular"
        if priority not in ("Regular", "Low", "Spot"):
            raise ArmError(400, "InvalidParameter", "The value '%s' of parameter 'priority' is not valid." % priority)
        spot = priority in ("Spot", "Low")
        if p.get("evictionPolicy") is not None:
            if not spot:
                raise ArmError(400, "InvalidParameter", "Eviction policy can be set only on Spot virtual machines.")
            if p["evictionPolicy"] not in ("Deallocate", "Delete"):
                raise ArmError(400, "InvalidParameter", "The value '%s' of parameter 'evictionPolicy' is not valid."
                               % p["evictionPolicy"])
        billing = p.get("billingProfile")
        if billing is not None:
            if not spot:
                raise ArmError(400, "InvalidParameter", "Billing profile can be set only on Spot virtual machines.")
            price = billing.get("maxPrice")
            if price is not None and price != -1 and (price <= 0 or round(price, 5) != price):
                raise ArmError(400, "InvalidMaxPrice", "The max price %s is not valid: -1, or a price above zero "
                                                       "with up to 5 decimals." % price)

    def _put_virtualmachines(self, rid, res, existing):
        p = _props(res)
        location = res.get("location")
        size = (p.get("hardwareProfile") or {}).get("vmSize")
        if size not in SIZES or (size, location) in self.restricted:
            raise ArmError(409, "SkuNotAvailable", "The requested VM size for resource '%s' is currently not "
                                                   "available in location '%s'." % (size, location))
        family, vcpus, accel, _zones = SIZES[size]
        self._check_priority(p)
        os_profile = p.get("osProfile")
        if existing is not None:
            if os_profile != _props(existing).get("osProfile"):
                raise ArmError(409, "PropertyChangeNotAllowed", "Changing property 'osProfile' is not allowed.")
        elif os_profile:
            linux = os_profile.get("linuxConfiguration") or {}
            for key in (linux.get("ssh") or {}).get("publicKeys") or []:
                if key.get("path") != "/home/%s/.ssh/authorized_keys" % os_profile.get("adminUsername"):
                    raise ArmError(400, "InvalidParameter", "The SSH key path %s is not allowed; use "
                                   "/home/<adminUsername>/.ssh/authorized_keys." % key.get("path"))
            if not linux.get("disablePasswordAuthentication") and not os_profile.get("adminPassword"):
                raise ArmError(400, "InvalidParameter", "Required parameter 'adminPassword' is missing (null).")
        image = ((p.get("storageProfile") or {}).get("imageReference") or {})
        if image.get("publisher"):
            key = (image["publisher"].lower(), image.get("offer", "").lower(), image.get("sku", "").lower())
            versions = IMAGES.get(key) or []
            if not versions or (image.get("version") not in ("latest",) and image.get("version") not in versions):
                raise ArmError(404, "PlatformImageNotFound", "The platform image '%s:%s:%s:%s' is not available."
                               % (image["publisher"], image.get("offer"), image.get("sku"), image.get("version")))
        zones = res.get("zones") or []
        avset = p.get("availabilitySet")
        if avset:
            if zones:
                raise ArmError(400, "BadRequest", "Availability Zone and Availability Set cannot both be specified.")
            aset = self._check_ref(avset, rid, location)
            if ((aset.get("sku") or {}).get("name") or "Classic") != "Aligned":
                raise ArmError(400, "OperationNotAllowed", "A VM with managed disks cannot be added to an "
                                                           "availability set with the Classic SKU; use Aligned.")
        if p.get("proximityPlacementGroup"):
            self._check_ref(p["proximityPlacementGroup"], rid, location)
        nics = []
        for ref in (p.get("networkProfile") or {}).get("networkInterfaces") or []:
            nic = self._check_ref(ref, rid, location)
            holder = _props(nic).get("virtualMachine")
            if holder and _ref(holder) != rid.lower():
                raise ArmError(400, "NicInUse", "Network interface %s is used by virtual machine %s."
                               % (nic["id"], holder["id"]))
            if _props(nic).get("enableAcceleratedNetworking") and not accel:
                raise ArmError(400, "VMSizeIsNotPermittedToEnableAcceleratedNetworking",
                               "VM size %s is not compatible with enabling accelerated networking on network "
                               "interface(s) %s." % (size, nic["id"]))
            nics.append(nic)
        if existing is None or _props(existing).get("provisioningState") == "Failed":
            limit = self.quota.get((location, family))
            if limit is not None:
                used = sum(SIZES[_props(r)["hardwareProfile"]["vmSize"]][1] for r in self.resources.values()
                           if r["type"] == "Microsoft.Compute/virtualMachines" and r["location"] == location
                           and SIZES[_props(r)["hardwareProfile"]["vmSize"]][0] == family and r["id"] != rid)
                if used + vcpus > limit:
                    raise ArmError(409, "OperationNotAllowed",
                                   "Operation could not be completed as it results in exceeding approved %s Cores "
                                   "quota. Additional details - Deployment Model: Resource Manager, Location: %s, "
                                   "Current Limit: %d, Current Usage: %d, Additional Required: %d, (Minimum) New "
                                   "Limit Required: %d." % (family, location, limit, used, vcpus, used + vcpus))
        if existing is None or _props(existing).get("provisioningState") == "Failed":
            self._reserve(rid, p, size, location, zones)
        for nic in nics:
            _props(nic)["virtualMachine"] = {"id": rid}
        if avset:
            aset = self.resources[_ref(avset)]
            members = _props(aset).setdefault("virtualMachines", [])
            if {"id": rid} not in members:
                members.append({"id": rid})
        p["vmId"] = (_props(existing).get("vmId") if existing else None) or str(uuid.uuid4())
        if "SystemAssigned" in ((res.get("identity") or {}).get("type") or ""):
            # ARM makes the identity's service principal and answers with its ids
            principal = ((existing or {}).get("identity") or {}).get("principalId") or str(uuid.uuid4())
            res["identity"].update(principalId=principal, tenantId=TENANT)
            self.principals[principal] = rid
        if existing is not None and _props(existing).get("provisioningState") == "Succeeded" \
                and _strip(existing) == _strip(res):
            _props(res)["provisioningState"] = "Succeeded"
            _props(res)["storageProfile"]["osDisk"] = _props(existing)["storageProfile"]["osDisk"]
            self.resources[rid.lower()] = res
            headers, _op = self._operation("Microsoft.Compute", location, lambda: None)
            return 200, headers, res
        zone = zones[0] if zones else None
        failing = (location, zone) in self.alloc_fail or (location, None) in self.alloc_fail

        def complete(vm):
            if failing:
                code = "ZonalAllocationFailed" if zone else "AllocationFailed"
                return {"code": code, "message": "Allocation failed. We do not have sufficient capacity for the "
                                                 "requested VM size in this region."}
            os_disk = _props(vm)["storageProfile"].setdefault("osDisk", {})
            disk_name = os_disk.get("name") or "%s_OsDisk_1_%s" % (vm["name"], uuid.uuid4().hex[:8])
            disk_id = self.res_id(rid.split("/")[4], "Microsoft.Compute/disks", disk_name)
            os_disk["name"] = disk_name
            os_disk.setdefault("managedDisk", {})["id"] = disk_id
            self.resources[disk_id.lower()] = {
                "id": disk_id, "name": disk_name, "type": "Microsoft.Compute/disks", "location": location,
                "managedBy": rid, "properties": {"provisioningState": "Succeeded", "diskState": "Attached"}}
            return None
        return self._store_lro(rid, res, existing, "Microsoft.Compute", "virtualMachines", complete)

    def _instance_view(self, vm):
        state = _props(vm).get("provisioningState")
        statuses = [{"code": "ProvisioningState/%s" % state.lower()}]
        if state == "Succeeded":
            statuses.append({"code": "PowerState/%s" % _props(vm).get("_power", "running")})
        return {"statuses": statuses}

    def _vm_start(self, rg, name):
        vm = self._get(self.res_id(rg, "Microsoft.Compute/virtualMachines", name))

        def complete():
            _props(vm)["_power"] = "running"
        headers, _op = self._operation("Microsoft.Compute", vm["location"], complete)
        return 202, headers, None

    def _delete(self, kind, res):
        rid = res["id"].lower()
        p = _props(res)
        blockers = {
            "microsoft.network/networkinterfaces": ("virtualMachine", "NicInUse"),
            "microsoft.network/publicipaddresses": ("ipConfiguration", "PublicIPAddressInUse"),
            "microsoft.compute/availabilitysets": ("virtualMachines", "AvailabilitySetInUse"),
        }
        if kind in blockers:
            field, code = blockers[kind]
            if p.get(field):
                raise ArmError(400, code, "Resource %s is in use by %s and cannot be deleted."
                               % (res["id"], json.dumps(p[field])))
        if kind == "microsoft.network/virtualnetworks":
            for nic in self.resources.values():
                for conf in _props(nic).get("ipConfigurations") or []:
                    if _ref((conf.get("properties") or {}).get("subnet")).startswith(rid + "/"):
                        raise ArmError(400, "InUseSubnetCannotBeDeleted", "Subnet of %s is in use by %s."
                                       % (res["id"], nic["id"]))
        if kind == "microsoft.network/networksecuritygroups":
            for other in self.resources.values():
                refs = [_props(other).get("networkSecurityGroup")]
                refs += [(s.get("properties") or {}).get("networkSecurityGroup")
                         for s in _props(other).get("subnets") or []]
                if any(_ref(r) == rid for r in refs if r):
                    raise ArmError(400, "InUseNetworkSecurityGroupCannotBeDeleted",
                                   "Network security group %s cannot be deleted because it is in use by %s."
                                   % (res["id"], other["id"]))
        if kind == "microsoft.network/applicationsecuritygroups":
            for other in self.resources.values():
                refs = [ref for conf in _props(other).get("ipConfigurations") or []
                        for ref in (conf.get("properties") or {}).get("applicationSecurityGroups") or []]
                refs += [ref for rule in _props(other).get("securityRules") or []
                         for key in ("sourceApplicationSecurityGroups", "destinationApplicationSecurityGroups")
                         for ref in (rule.get("properties") or {}).get(key) or []]
                if any(_ref(r) == rid for r in refs):
                    # the message ARM gives (azure-cli issue 12591): "... cannot be deleted because it is referenced
                    # by IpConfiguration(s) ipconfig1."
                    raise ArmError(400, "InUseApplicationSecurityGroupCannotBeDeleted",
                                   "Application Security Group %s cannot be deleted because it is referenced by %s."
                                   % (res["name"], other["id"]))
        if kind == "microsoft.compute/proximityplacementgroups":
            for other in self.resources.values():
                if _ref(_props(other).get("proximityPlacementGroup")) == rid:
                    raise ArmError(400, "ProximityPlacementGroupInUse", "Proximity placement group %s is in use by "
                                                                        "%s." % (res["id"], other["id"]))
        if kind in ("microsoft.compute/proximityplacementgroups", "microsoft.compute/availabilitysets"):
            del self.resources[rid]
            return 200, {}, None
        namespace = "Microsoft.Compute" if "compute" in kind else "Microsoft.Network"
        p["provisioningState"] = "Deleting"

        def complete():
            self.resources.pop(rid, None)
            if kind == "microsoft.compute/virtualmachines":
                self._cascade(res)
                # its system-assigned identity leaves the directory; role assignments naming it stay
                self.principals.pop((res.get("identity") or {}).get("principalId"), None)
            if kind == "microsoft.network/networkinterfaces":
                for conf in p.get("ipConfigurations") or []:
                    pip = self.resources.get(_ref((conf.get("properties") or {}).get("publicIPAddress")))
                    if pip is not None:
                        _props(pip)["ipConfiguration"] = None
        headers, _op = self._operation(namespace, res.get("location"), complete)
        headers["Location"] = headers["Azure-AsyncOperation"]
        return 202, headers, None

    def _cascade(self, vm):
        """What goes with a deleted VM: only what says deleteOption Delete (the default is Detach)."""
        p = _props(vm)
        rid = vm["id"].lower()
        os_disk = (p.get("storageProfile") or {}).get("osDisk") or {}
        disk_id = _ref(os_disk.get("managedDisk"))
        if disk_id in self.resources:
            if os_disk.get("deleteOption") == "Delete":
                del self.resources[disk_id]
            else:
                self.resources[disk_id]["managedBy"] = None
                _props(self.resources[disk_id])["diskState"] = "Unattached"
        avset = self.resources.get(_ref(p.get("availabilitySet")))
        if avset is not None:
            _props(avset)["virtualMachines"] = [v for v in _props(avset).get("virtualMachines") or []
                                                if _ref(v) != rid]
        for ref in (p.get("networkProfile") or {}).get("networkInterfaces") or []:
            nic = self.resources.get(_ref(ref))
            if nic is None:
                continue
            _props(nic)["virtualMachine"] = None
            if (ref.get("properties") or {}).get("deleteOption") != "Delete":
                continue
            del self.resources[_ref(ref)]
            for conf in _props(nic).get("ipConfigurations") or []:
                pip = self.resources.get(_ref((conf.get("properties") or {}).get("publicIPAddress")))
                if pip is None:
                    continue
                _props(pip)["ipConfiguration"] = None
                if _props(pip).get("deleteOption") == "Delete":
                    del self.resources[pip["id"].lower()]


def _network_answer(res, existing):
    """What ARM adds to every Microsoft.Network resource it answers with (the recorded sessions of
    azure-sdk-for-python's sdk/network/azure-mgmt-network/tests/recordings): an ``etag`` on the resource and on each
    child (subnets, ipConfigurations) with its ``type``, a ``resourceGuid``; NICs answer ``primary``,
    ``enableIPForwarding`` and each ipConfiguration's ``privateIPAddressVersion``."""
    etag = res.get("etag") or 'W/"%s"' % uuid.uuid4()
    res["etag"] = etag
    props = _props(res)
    props["resourceGuid"] = (_props(existing).get("resourceGuid") if existing else None) or str(uuid.uuid4())
    kind = res.get("type", "")
    children = {"Microsoft.Network/virtualNetworks": ("subnets", "Microsoft.Network/virtualNetworks/subnets"),
                "Microsoft.Network/networkInterfaces": ("ipConfigurations",
                                                        "Microsoft.Network/networkInterfaces/ipConfigurations")}
    if kind in children:
        member, child_type = children[kind]
        for child in props.get(member) or []:
            child.update(etag=etag, type=child_type)
            cprops = child.setdefault("properties", {})
            cprops.setdefault("provisioningState", "Succeeded")
            if kind.endswith("networkInterfaces"):
                cprops.setdefault("privateIPAddressVersion", "IPv4")
    if kind.endswith("networkInterfaces"):
        props.setdefault("primary", True)
        props.setdefault("enableIPForwarding", False)


# (name, description, source, destination, access, priority, direction) of the rules every NSG has, as recorded
DEFAULT_SECURITY_RULES = (
    ("AllowVnetInBound", "Allow inbound traffic from all VMs in VNET", "VirtualNetwork", "VirtualNetwork", "Allow",
     65000, "Inbound"),
    ("AllowAzureLoadBalancerInBound", "Allow inbound traffic from azure load balancer", "AzureLoadBalancer", "*",
     "Allow", 65001, "Inbound"),
    ("DenyAllInBound", "Deny all inbound traffic", "*", "*", "Deny", 65500, "Inbound"),
    ("AllowVnetOutBound", "Allow outbound traffic from all VMs to all VMs in VNET", "VirtualNetwork",
     "VirtualNetwork", "Allow", 65000, "Outbound"),
    ("AllowInternetOutBound", "Allow outbound traffic from all VMs to Internet", "*", "Internet", "Allow", 65001,
     "Outbound"),
    ("DenyAllOutBound", "Deny all outbound traffic", "*", "*", "Deny", 65500, "Outbound"),
)


def _default_security_rules(rid, etag):
    return [{"name": name, "id": "%s/defaultSecurityRules/%s" % (rid, name), "etag": etag,
             "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
             "properties": {"provisioningState": "Succeeded", "description": text, "protocol": "*",
                            "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": src,
                            "destinationAddressPrefix": dst, "access": access, "priority": prio,
                            "direction": direction, "sourcePortRanges": [], "destinationPortRanges": [],
                            "sourceAddressPrefixes": [], "destinationAddressPrefixes": []}}
            for name, text, src, dst, access, prio, direction in DEFAULT_SECURITY_RULES]


def _strip(res):
    """A VM's request-relevant content (what a re-PUT compares)."""
    doc = copy.deepcopy(res)
    doc.pop("id", None)
    p = doc.get("properties") or {}
    for key in ("provisioningState", "vmId", "_power"):
        p.pop(key, None)
    os_disk = (p.get("storageProfile") or {}).get("osDisk") or {}
    os_disk.pop("managedDisk", None)
    os_disk.pop("name", None)
    return doc


class _Handler(BaseHTTPRequestHandler):
    arm = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = raw
            if raw and "json" in (self.headers.get("Content-Type") or "json"):
                try:
                    body = json.loads(raw.decode("utf-8"))
                except ValueError:
                    raise ArmError(400, "InvalidRequestContent", "The request content is not valid JSON.")
            status, headers, payload = self.arm.handle(self.command, self.path, self.headers, body)
        except ArmError as exc:
            status, headers = exc.status, exc.headers
            payload = {"error": {"code": exc.code, "message": exc.message}}
        data = b"" if payload is None else json.dumps(_public(payload)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", uuid.uuid4().hex)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _serve


def _public(doc):
    """Drop the double's own bookkeeping (keys starting with '_')."""
    if isinstance(doc, dict):
        return dict((k, _public(v)) for k, v in doc.items() if not k.startswith("_"))
    if isinstance(doc, list):
        return [_public(v) for v in doc]
    return doc


if __name__ == "__main__":
    import sys
    arm = ArmDouble(lro_seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 0.05)
    print(json.dumps(dict(url=arm.url, ca_file=arm.ca_file, subscription=SUBSCRIPTION, tenant=TENANT,
                          client_id=CLIENT_ID)), flush=True)
    threading.Event().wait()
