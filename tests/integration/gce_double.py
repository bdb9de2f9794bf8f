"""A Compute Engine v1 API test double: HTTP on loopback, started by the tests.

It speaks the real wire format, as far as the collection (and the peer google.cloud) use it:

- routes, query parameters and request bodies come from the Compute v1 discovery document that ships in
  google-api-python-client: an unknown method, query parameter or body field (at any depth), a wrong type or a
  value outside an enum is refused with HTTP 400 as the API does;
- mutations answer with Operation resources that go PENDING -> RUNNING -> DONE over configurable times;
  ``*Operations.wait`` blocks for at most ``wait_block_s`` and may return while still RUNNING;
- ``requestId`` must be a UUID; a repeated one returns the first operation (the API remembers them);
- selfLinks come back with the host the request used; empty lists have no ``items`` key;
- a service-account token endpoint (``/token``, the key file's ``token_uri``) and Bearer checks;
- semantics the collection depends on: a GPU VM needs ``onHostMaintenance: TERMINATE``; a firewall rule with
  neither sourceRanges nor sourceTags gets 0.0.0.0/0; a resource policy in use cannot be deleted;
- injectable faults: a stockout per zone, a quota error, 429/503 on a share of calls (half of the 503s after the
  call took effect: the answer is lost), an operation that ends DONE with an error.

``python gce_double.py`` serves one on a free port until interrupted (for trying the collection by hand).
"""

from __future__ import annotations

import base64
import collections
import copy
import datetime
import glob
import hashlib
import itertools
import json
import os
import random
import re
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PROJECT = "aiinfra-test"
API_PREFIX = "/compute/v1/"
STANDARD_PARAMS = ("$.xgafv", "access_token", "alt", "callback", "fields", "key", "oauth_token", "prettyPrint",
                   "quotaUser", "uploadType", "upload_protocol", "userIp")

# zone -> machine types offered there (a missing type is a 404, as for a type the zone does not have)
MACHINE_TYPES = {
    "a3-highgpu-8g": {"guestCpus": 208, "memoryMb": 1916928, "accelerators": [("nvidia-h100-80gb", 8)]},
    "a2-highgpu-1g": {"guestCpus": 12, "memoryMb": 87040, "accelerators": [("nvidia-tesla-a100", 1)]},
    "g2-standard-4": {"guestCpus": 4, "memoryMb": 16384, "accelerators": [("nvidia-l4", 1)]},
    "n1-standard-8": {"guestCpus": 8, "memoryMb": 30720, "accelerators": []},
    "e2-small": {"guestCpus": 2, "memoryMb": 2048, "accelerators": []},
}
ZONES = {
    "us-central1-a": ["a3-highgpu-8g", "a2-highgpu-1g", "g2-standard-4", "n1-standard-8", "e2-small"],
    "us-central1-b": ["a3-highgpu-8g", "a2-highgpu-1g", "g2-standard-4", "n1-standard-8", "e2-small"],
    "us-central1-c": ["a2-highgpu-1g", "n1-standard-8", "e2-small"],
    "europe-west4-a": ["a3-highgpu-8g", "n1-standard-8", "e2-small"],
}
ACCELERATORS = {
    "us-central1-a": ["nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-h100-80gb", "nvidia-tesla-a100", "nvidia-l4"],
    "us-central1-b": ["nvidia-tesla-t4", "nvidia-h100-80gb", "nvidia-tesla-a100", "nvidia-l4"],
    "us-central1-c": ["nvidia-tesla-t4", "nvidia-tesla-a100"],
    "europe-west4-a": ["nvidia-tesla-t4", "nvidia-h100-80gb"],
}
IMAGES = {
    ("debian-cloud", "debian-12-bookworm-v20260101"): "debian-12",
    ("debian-cloud", "debian-12-bookworm-v20251101"): "debian-12",
    ("deeplearning-platform-release", "common-cu124-v20260101-debian-11-py310"): "common-cu124-debian-11",
    ("deeplearning-platform-release", "common-cu124-v20251001-debian-11-py310"): "common-cu124-debian-11",
}


def discovery_document():
    import googleapiclient  # pylint: disable=import-outside-toplevel
    base = os.path.dirname(googleapiclient.__file__)
    path = os.path.join(base, "discovery_cache", "documents", "compute.v1.json")
    if not os.path.exists(path):
        path = sorted(glob.glob(os.path.join(base, "**", "compute.v1.json"), recursive=True))[0]
    with open(path) as handle:
        return json.load(handle)


def default_network_rules(network):
    """The firewall rules of a project's ``default`` network, as Compute Engine creates them with it (the VPC
    documentation's "Pre-populated rules in the default network"): SSH, RDP and ICMP from anywhere, and everything
    from the network's own 10.128.0.0/9, at priority 65534, on every instance."""
    def rule(name, description, ranges, allowed):
        return {"name": name, "description": description, "network": network, "priority": 65534,
                "sourceRanges": ranges, "allowed": allowed, "direction": "INGRESS", "logConfig": {"enable": False},
                "disabled": False}
    return {
        "default-allow-internal": rule("default-allow-internal", "Allow internal traffic on the default network",
                                       ["10.128.0.0/9"], [{"IPProtocol": "tcp", "ports": ["0-65535"]},
                                                          {"IPProtocol": "udp", "ports": ["0-65535"]},
                                                          {"IPProtocol": "icmp"}]),
        "default-allow-ssh": rule("default-allow-ssh", "Allow SSH from anywhere", ["0.0.0.0/0"],
                                  [{"IPProtocol": "tcp", "ports": ["22"]}]),
        "default-allow-rdp": rule("default-allow-rdp", "Allow RDP from anywhere", ["0.0.0.0/0"],
                                  [{"IPProtocol": "tcp", "ports": ["3389"]}]),
        "default-allow-icmp": rule("default-allow-icmp", "Allow ICMP from anywhere", ["0.0.0.0/0"],
                                   [{"IPProtocol": "icmp"}]),
    }


class ApiError(Exception):
    def __init__(self, status, message, reason="invalid", extra=None):
        super(ApiError, self).__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.extra = extra or {}

    def body(self):
        status_text = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                       409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED",
                       501: "UNIMPLEMENTED", 503: "UNAVAILABLE"}.get(self.status, "UNKNOWN")
        err = {"code": self.status, "message": self.message, "status": status_text,
               "errors": [{"message": self.message, "domain": "global", "reason": self.reason}]}
        err.update(self.extra)
        return {"error": err}


def not_found(kind, path):
    return ApiError(404, "The resource '%s' was not found" % path, "notFound")


# what the discovery document's field descriptions say about a field's form
OUTPUT_ONLY_RE = re.compile(r"^\s*(Output only\.|\[Output Only\])")
NAMES_ONLY_RE = re.compile(r"\(names, not URLs\)|only accepts a [a-z ]+ name")


def output_only(prop):
    """A field the server sets: its description starts ``Output only.`` / ``[Output Only]``."""
    return bool(OUTPUT_ONLY_RE.match(prop.get("description") or ""))


def names_only(prop):
    """A field that takes resource names, not URLs (``InstanceProperties.resourcePolicies``, ``.machineType``)."""
    return bool(NAMES_ONLY_RE.search(" ".join((prop.get("description") or "").split())))


class Validator(object):
    """Request bodies against the discovery document's schemas (unknown fields, types, enums), and its field
    descriptions: an output-only field in a request, or a URL where the description asks for names, is a 400."""

    def __init__(self, doc):
        self.schemas = doc["schemas"]

    def check(self, value, schema, where):
        if "$ref" in schema:
            schema = self.schemas[schema["$ref"]]
        kind = schema.get("type")
        if kind == "object":
            if not isinstance(value, dict):
                raise ApiError(400, "Invalid value at '%s': expected an object" % where)
            props = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                if key in props:
                    field = "%s.%s" % (where, key)
                    # GCE accepts an output-only field set to the constant its schema documents as the default
                    # (``kind: compute#firewall``, which google.cloud sends in every body); any other value is a 400
                    if output_only(props[key]) and not ("default" in props[key] and item == props[key]["default"]):
                        raise ApiError(400, "Invalid value for field '%s': '%s'. The field is output only and "
                                            "cannot be set in a request." % (field, item))
                    if names_only(props[key]):
                        for i, name in enumerate(item if isinstance(item, list) else [item]):
                            if isinstance(name, str) and "/" in name:
                                at = "%s[%d]" % (field, i) if isinstance(item, list) else field
                                raise ApiError(400, "Invalid value for field '%s': '%s'. Expected a resource name, "
                                                    "not a URL." % (at, name))
                    self.check(item, props[key], field)
                elif extra is not None:
                    self.check(item, extra, "%s[%s]" % (where, key))
                else:
                    raise ApiError(400, "Invalid JSON payload received. Unknown name \"%s\" at '%s': Cannot find "
                                        "field." % (key, where))
        elif kind == "array":
            if not isinstance(value, list):
                raise ApiError(400, "Invalid value at '%s': expected a list" % where)
            for i, item in enumerate(value):
                self.check(item, schema.get("items") or {}, "%s[%d]" % (where, i))
        elif kind == "string":
            if schema.get("format") in ("int64", "uint64"):
                if not (isinstance(value, int) and not isinstance(value, bool)) and not (
                        isinstance(value, str) and re.match(r"^-?[0-9]+$", value)):
                    raise ApiError(400, "Invalid value at '%s' (TYPE_INT64), %r" % (where, value))
                return
            if not isinstance(value, str):
                raise ApiError(400, "Invalid value at '%s' (TYPE_STRING), %r" % (where, value))
            if schema.get("enum") and value not in schema["enum"]:
                raise ApiError(400, "Invalid value at '%s', \"%s\"" % (where, value))
        elif kind == "integer":
            if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
                raise ApiError(400, "Invalid value at '%s' (TYPE_INT32), %r" % (where, value))
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise ApiError(400, "Invalid value at '%s' (TYPE_BOOL), %r" % (where, value))
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ApiError(400, "Invalid value at '%s' (TYPE_DOUBLE), %r" % (where, value))


def fingerprint(value):
    return base64.b64encode(hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()[:8]).decode()


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class ComputeDouble(object):
    """The double's state and behaviour. Times in seconds; ``throttle``: share of calls answered 429/503."""

    def __init__(self, project=PROJECT, pending_s=0.05, running_s=0.25, boot_s=0.3, delete_s=0.2, wait_block_s=0.3,
                 seed=1, tls=None):
        self.project = project
        self.pending_s = pending_s
        self.running_s = running_s
        self.boot_s = boot_s
        self.delete_s = delete_s
        self.wait_block_s = wait_block_s
        self.doc = discovery_document()
        self.validator = Validator(self.doc)
        self.routes = self._routes()
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.ids = itertools.count(1000)
        self.ips = itertools.count(2)
        # faults
        self.stockout = set()
        self.quota = None
        self.throttle = 0.0
        self.fail_operations = {}
        self.hold_operations = set()
        # bookkeeping
        self.calls = collections.Counter()
        self.log = []
        self.tokens = 0
        self.throttled = 0
        # resources (links stored with the {BASE} placeholder, rendered with the request's host)
        self.instances = {}
        self.firewalls = {}
        self.policies = {}
        self.reservations = {}  # (zone, name) -> reservation (see add_reservation)
        self.operations = {}
        self.request_ids = {}
        self.networks = {"default": self._network("default")}
        # the rules Compute Engine puts on a project's default network when it makes it
        self.network_rules = set()
        for name, fw in default_network_rules(self._p("global", "networks", "default")).items():
            fw.update(kind="compute#firewall", id=str(next(self.ids)), creationTimestamp=now_iso(),
                      selfLink=self._p("global", "firewalls", name))
            self.firewalls[name] = fw
            self.network_rules.add(name)
        self.subnetworks = {}
        for region in sorted(set(z.rsplit("-", 1)[0] for z in ZONES)):
            self.subnetworks[(region, "default")] = self._subnetwork(region, "default")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.tls_context = context
        else:
            self.tls_context = None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # -- addresses ---------------------------------------------------------------
    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:%d%s" % (self.port, API_PREFIX)

    @property
    def token_uri(self):
        return "http://127.0.0.1:%d/token" % self.port

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _p(self, *parts):
        return "{BASE}projects/%s/%s" % (self.project, "/".join(parts))

    # -- inspection for tests -----------------------------------------------------
    def live_instances(self, label=None, value=None):
        with self.lock:
            self._advance()
            return [copy.deepcopy(i) for i in self.instances.values()
                    if label is None or (i.get("labels") or {}).get(label) == value]

    def labelled(self, cluster):
        """Everything that carries the cluster (instances by label, rules and policies by name)."""
        with self.lock:
            self._advance()
            return {
                "instances": sorted(i["name"] for i in self.instances.values()
                                    if (i.get("labels") or {}).get("aiinfra-gpu-cluster") == cluster),
                "firewalls": sorted(n for n in self.firewalls if n.startswith("aiinfra-%s-" % cluster)),
                "policies": sorted(n for (_r, n) in self.policies if n == "aiinfra-%s" % cluster),
            }

    def resource_count(self):
        with self.lock:
            self._advance()
            return len(self.instances) + len(set(self.firewalls) - self.network_rules) + len(self.policies)

    def mutations(self, method_id=None):
        return [e for e in self.log if e["method"] != "GET" and (method_id is None or e["id"] == method_id)]

    # -- routing -----------------------------------------------------------------
    def _routes(self):
        routes = []

        def walk(resources):
            for res in resources.values():
                for method in (res.get("methods") or {}).values():
                    pattern = re.sub(r"\{[+]?([^}]+)\}", r"(?P<\1>[^/]+)", method["path"])
                    routes.append((method["httpMethod"], re.compile("^%s$" % pattern), method))
                walk(res.get("resources") or {})
        walk(self.doc["resources"])
        # literal segments win over parameters (".../instances/bulkInsert" is not instances.get)
        routes.sort(key=lambda r: -len(re.sub(r"\(\?P<[^>]+>\[\^/\]\+\)", "", r[1].pattern)))
        return routes

    def route(self, verb, path):
        for http_method, regex, method in self.routes:
            if http_method == verb:
                match = regex.match(path)
                if match:
                    return method, match.groupdict()
        raise ApiError(404, "Not Found: %s %s" % (verb, path), "notFound")

    def check_query(self, method, query):
        allowed = set(p for p, spec in (method.get("parameters") or {}).items() if spec.get("location") == "query")
        for name in query:
            if name not in allowed and name not in STANDARD_PARAMS:
                raise ApiError(400, "Invalid JSON payload received. Unknown name \"%s\": Cannot bind query parameter."
                               % name)
        rid = query.get("requestId")
        if rid is not None:
            try:
                if str(uuid.UUID(rid)) != rid.lower():
                    raise ValueError(rid)
            except ValueError:
                raise ApiError(400, "Invalid value for field 'requestId': '%s'. The request id must be a valid UUID "
                                    "with the exception that zero UUID is not supported" % rid)

    # -- the request cycle ---------------------------------------------------------
    def handle(self, verb, path, query, body, base):
        method, params = self.route(verb, path)
        self.check_query(method, query)
        request = method.get("request")
        if request:
            if body is None:
                raise ApiError(400, "Required field 'resource' not specified")
            self.validator.check(body, request, "resource")
        if params.get("project") and params["project"] != self.project and method["id"] not in (
                "compute.images.get", "compute.images.getFromFamily"):
            raise ApiError(403, "Required 'compute.%s' permission for 'projects/%s'" % (
                method["id"].split(".", 1)[1], params["project"]), "forbidden")
        self.calls[method["id"]] += 1
        self.log.append({"id": method["id"], "method": verb, "path": path, "query": dict(query),
                         "body": copy.deepcopy(body)})
        handler = getattr(self, "do_" + method["id"].split(".", 1)[1].replace(".", "_"), None)
        if handler is None:
            raise ApiError(501, "the double does not implement %s" % method["id"], "notImplemented")
        if verb != "POST" or not method["id"].endswith("Operations.wait"):
            with self.lock:
                self._advance()
                return handler(params, query, body)
        return handler(params, query, body)

    # -- operations ----------------------------------------------------------------
    def _operation(self, kind, target, scope, query, effect=None, finish=None, error=None, hold=None):
        """A new operation (or the first one of this requestId): ``effect`` runs when it starts RUNNING, ``finish``
        when it is DONE; ``error`` (a list of error items) makes it end DONE with that error and no effect."""
        rid = query.get("requestId")
        if rid and rid in self.request_ids:
            return self.operations[self.request_ids[rid]]["op"]
        name = "operation-%d-%s" % (int(time.time() * 1000), uuid.uuid4().hex[:12])
        failure = self.fail_operations.get(kind)
        if failure and error is None:
            error = [failure.pop(0)] if isinstance(failure, list) else [failure]
            if isinstance(self.fail_operations[kind], list) and not self.fail_operations[kind]:
                del self.fail_operations[kind]
        op = {"kind": "compute#operation", "id": str(next(self.ids)), "name": name, "operationType": kind,
              "targetLink": target, "targetId": str(next(self.ids)), "status": "PENDING", "progress": 0,
              "user": "double@%s.iam.gserviceaccount.com" % self.project, "insertTime": now_iso()}
        if scope[0] == "zone":
            op["zone"] = self._p("zones", scope[1])
            op["selfLink"] = self._p("zones", scope[1], "operations", name)
        elif scope[0] == "region":
            op["region"] = self._p("regions", scope[1])
            op["selfLink"] = self._p("regions", scope[1], "operations", name)
        else:
            op["selfLink"] = self._p("global", "operations", name)
        if rid:
            op["clientOperationId"] = rid
            self.request_ids[rid] = name
        self.operations[name] = {"op": op, "created": time.monotonic(), "effect": effect, "finish": finish,
                                 "error": error, "hold": kind in self.hold_operations if hold is None else hold}
        return op

    def _advance(self):
        now = time.monotonic()
        for record in self.operations.values():
            op = record["op"]
            if op["status"] == "DONE" or record["hold"]:
                continue
            age = now - record["created"]
            if op["status"] == "PENDING" and age >= self.pending_s:
                op["status"] = "RUNNING"
                op["startTime"] = now_iso()
                op["progress"] = 50
                if record["effect"] and not record["error"]:
                    record["effect"]()
            if op["status"] == "RUNNING" and age >= self.pending_s + self.running_s:
                op["status"] = "DONE"
                op["progress"] = 100
                op["endTime"] = now_iso()
                if record["error"]:
                    op["error"] = {"errors": record["error"]}
                    op["httpErrorStatusCode"] = 400
                    op["httpErrorMessage"] = "BAD REQUEST"
                elif record["finish"]:
                    record["finish"]()
        for inst in list(self.instances.values()):
            age = now - inst["_created"]
            if inst["status"] == "PROVISIONING" and age >= self.boot_s / 2:
                inst["status"] = "STAGING"
            if inst["status"] == "STAGING" and age >= self.boot_s:
                inst["status"] = "RUNNING"
                for access in inst["networkInterfaces"][0].get("accessConfigs") or []:
                    access["natIP"] = inst["_nat"]

    def release(self):
        """Let held operations go on (``hold_operations``: the operation types that stay PENDING until then)."""
        with self.lock:
            self.hold_operations = set()
            for record in self.operations.values():
                if record["hold"]:
                    record["hold"] = False
                    record["created"] = time.monotonic()

    def _wait(self, scope_key, params):
        deadline = time.monotonic() + self.wait_block_s
        while True:
            with self.lock:
                self._advance()
                record = self.operations.get(params["operation"])
                if record is None:
                    raise not_found("operation", params["operation"])
                if record["op"]["status"] == "DONE" or time.monotonic() >= deadline:
                    return record["op"]
            time.sleep(0.01)

    def do_zoneOperations_wait(self, params, query, body):
        return self._wait("zone", params)

    def do_regionOperations_wait(self, params, query, body):
        return self._wait("region", params)

    def do_globalOperations_wait(self, params, query, body):
        return self._wait("global", params)

    def _get_op(self, params, query, body):
        record = self.operations.get(params["operation"])
        if record is None:
            raise not_found("operation", params["operation"])
        return record["op"]

    do_zoneOperations_get = do_regionOperations_get = do_globalOperations_get = _get_op

    # -- lists -----------------------------------------------------------------------
    @staticmethod
    def _matches(item, flt):
        if not flt:
            return True
        for term in re.split(r"\s+AND\s+", flt.strip()):
            term = term.strip().strip("()")
            match = re.match(r"^([\w.\-]+)\s*(=|!=|eq|ne)\s*['\"]?(.*?)['\"]?$", term)
            if not match:
                raise ApiError(400, "Invalid value for field 'filter': '%s'. Invalid list filter expression." % flt)
            field, op, value = match.groups()
            actual = item
            for part in field.split("."):
                actual = (actual or {}).get(part) if isinstance(actual, dict) else None
            actual = "" if actual is None else str(actual)
            if op in ("eq", "ne"):
                hit = re.fullmatch(value, actual.rsplit("/", 1)[-1] if field in ("zone", "region") else actual)
            else:
                hit = actual == value
            if bool(hit) != (op in ("=", "eq")):
                return False
        return True

    def _list(self, kind, items, query):
        items = [i for i in items if self._matches(i, query.get("filter"))]
        start = int(query.get("pageToken") or 0)
        size = int(query.get("maxResults") or 500)
        page = {"kind": "compute#%sList" % kind, "id": "projects/%s/%s" % (self.project, kind)}
        if items[start:start + size]:
            page["items"] = items[start:start + size]
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return page

    def _aggregated(self, kind, key, scoped, query):
        out = {}
        for scope, items in scoped.items():
            items = [i for i in items if self._matches(i, query.get("filter"))]
            out[scope] = {key: items} if items else {"warning": {
                "code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope '%s' on this page." % scope}}
        return {"kind": "compute#%sAggregatedList" % kind, "items": out}

    # -- catalogue ---------------------------------------------------------------------
    def _zone(self, zone):
        if zone not in ZONES:
            raise not_found("zone", "projects/%s/zones/%s" % (self.project, zone))
        region = zone.rsplit("-", 1)[0]
        return {"kind": "compute#zone", "name": zone, "status": "UP", "region": self._p("regions", region),
                "selfLink": self._p("zones", zone), "id": str(abs(hash(zone)) % 10 ** 6)}

    def do_zones_get(self, params, query, body):
        return self._zone(params["zone"])

    def do_zones_list(self, params, query, body):
        return self._list("zone", [self._zone(z) for z in sorted(ZONES)], query)

    def _machine_type(self, zone, name):
        if zone not in ZONES or name not in ZONES[zone]:
            raise not_found("machineType", "projects/%s/zones/%s/machineTypes/%s" % (self.project, zone, name))
        info = MACHINE_TYPES[name]
        out = {"kind": "compute#machineType", "name": name, "zone": zone, "guestCpus": info["guestCpus"],
               "memoryMb": info["memoryMb"], "selfLink": self._p("zones", zone, "machineTypes", name),
               "id": str(abs(hash(name)) % 10 ** 6)}
        if info["accelerators"]:
            out["accelerators"] = [{"guestAcceleratorType": t, "guestAcceleratorCount": c}
                                   for t, c in info["accelerators"]]
        return out

    def do_machineTypes_get(self, params, query, body):
        return self._machine_type(params["zone"], params["machineType"])

    def do_acceleratorTypes_get(self, params, query, body):
        zone, name = params["zone"], params["acceleratorType"]
        if name not in ACCELERATORS.get(zone, []):
            raise not_found("acceleratorType", "projects/%s/zones/%s/acceleratorTypes/%s" % (self.project, zone, name))
        return {"kind": "compute#acceleratorType", "name": name, "zone": self._p("zones", zone),
                "selfLink": self._p("zones", zone, "acceleratorTypes", name), "maximumCardsPerInstance": 8}

    def _image(self, project, name):
        family = IMAGES.get((project, name))
        if family is None:
            raise not_found("image", "projects/%s/global/images/%s" % (project, name))
        return {"kind": "compute#image", "name": name, "family": family, "status": "READY", "diskSizeGb": "50",
                "selfLink": "{BASE}projects/%s/global/images/%s" % (project, name), "id": str(abs(hash(name)) % 10 ** 6)}

    def do_images_get(self, params, query, body):
        return self._image(params["project"], params["image"])

    def do_images_getFromFamily(self, params, query, body):
        names = sorted(n for (p, n), f in IMAGES.items() if p == params["project"] and f == params["family"])
        if not names:
            raise not_found("image", "projects/%s/global/images/family/%s" % (params["project"], params["family"]))
        return self._image(params["project"], names[-1])

    def _network(self, name):
        return {"kind": "compute#network", "name": name, "id": str(next(self.ids)), "autoCreateSubnetworks": True,
                "selfLink": self._p("global", "networks", name)}

    def _subnetwork(self, region, name):
        return {"kind": "compute#subnetwork", "name": name, "region": self._p("regions", region),
                "network": self._p("global", "networks", "default"), "ipCidrRange": "10.128.0.0/20",
                "selfLink": self._p("regions", region, "subnetworks", name)}

    def do_networks_get(self, params, query, body):
        if params["network"] not in self.networks:
            raise not_found("network", "projects/%s/global/networks/%s" % (self.project, params["network"]))
        return self.networks[params["network"]]

    def do_subnetworks_get(self, params, query, body):
        key = (params["region"], params["subnetwork"])
        if key not in self.subnetworks:
            raise not_found("subnetwork", "projects/%s/regions/%s/subnetworks/%s" % (self.project, key[0], key[1]))
        return self.subnetworks[key]

    # -- instances -------------------------------------------------------------------------
    def _public(self, inst):
        return dict((k, v) for k, v in inst.items() if not k.startswith("_"))

    def _key(self, zone, name):
        return "%s/%s" % (zone, name)

    def _instance(self, zone, name):
        inst = self.instances.get(self._key(zone, name))
        if inst is None:
            raise not_found("instance", "projects/%s/zones/%s/instances/%s" % (self.project, zone, name))
        return inst

    def do_instances_get(self, params, query, body):
        return self._public(self._instance(params["zone"], params["instance"]))

    def do_instances_list(self, params, query, body):
        zone = params["zone"]
        return self._list("instance", [self._public(i) for i in self.instances.values() if i["_zone"] == zone], query)

    def do_instances_aggregatedList(self, params, query, body):
        scoped = dict(("zones/%s" % z, []) for z in sorted(ZONES))
        for inst in self.instances.values():
            scoped["zones/%s" % inst["_zone"]].append(self._public(inst))
        return self._aggregated("instance", "instances", scoped, query)

    def _check_properties(self, zone, props, names):
        """What the real API refuses at once (HTTP 400) for an instance request."""
        mtype = props.get("machineType", "")
        mname = mtype.rsplit("/", 1)[-1]
        if zone not in ZONES:
            raise not_found("zone", "projects/%s/zones/%s" % (self.project, zone))
        if mname not in ZONES[zone]:
            raise ApiError(400, "Invalid value for field 'resource.machineType': '%s'. Machine type with name '%s' "
                                "does not exist in zone '%s'." % (mtype, mname, zone))
        gpus = list(MACHINE_TYPES[mname]["accelerators"])
        for acc in props.get("guestAccelerators") or []:
            aname = acc.get("acceleratorType", "").rsplit("/", 1)[-1]
            if aname not in ACCELERATORS.get(zone, []):
                raise ApiError(400, "Invalid value for field 'resource.guestAccelerators[0].acceleratorType': '%s'. "
                                    "Accelerator type '%s' does not exist in zone '%s'." % (aname, aname, zone))
            if MACHINE_TYPES[mname]["accelerators"]:
                raise ApiError(400, "Machine type %s has accelerators built in; guestAccelerators cannot be set"
                               % mname)
            gpus.append((aname, int(acc.get("acceleratorCount", 1))))
        scheduling = props.get("scheduling") or {}
        if gpus and scheduling.get("onHostMaintenance", "MIGRATE") != "TERMINATE":
            raise ApiError(400, "Invalid value for field 'resource.scheduling.onHostMaintenance': 'MIGRATE'. "
                                "Instances with guest accelerators do not support live migration.")
        self._check_scheduling(scheduling)
        for disk in props.get("disks") or []:
            source = (disk.get("initializeParams") or {}).get("sourceImage")
            if disk.get("boot") and not source and not disk.get("source"):
                raise ApiError(400, "Invalid value for field 'resource.disks[0]': a boot disk needs a source image")
            if source:
                match = re.search(r"projects/([^/]+)/global/images/(family/)?([^/]+)$", source)
                if not match:
                    raise ApiError(400, "Invalid value for field 'resource.disks[0].initializeParams.sourceImage': "
                                        "'%s'. The URL is malformed." % source)
                if match.group(2):
                    self.do_images_getFromFamily({"project": match.group(1), "family": match.group(3)}, {}, None)
                else:
                    self._image(match.group(1), match.group(3))
        for nic in props.get("networkInterfaces") or [{}]:
            net = (nic.get("network") or "default").rsplit("/", 1)[-1]
            if net not in self.networks:
                raise ApiError(400, "Invalid value for field 'resource.networkInterfaces[0].network': '%s'. The "
                                    "referenced network resource cannot be found." % net)
        region = zone.rsplit("-", 1)[0]
        for link in props.get("resourcePolicies") or []:
            if (region, link.rsplit("/", 1)[-1]) not in self.policies:
                raise ApiError(400, "Invalid value for field 'resource.resourcePolicies[0]': '%s'. The referenced "
                                    "resource policy cannot be found." % link)
        for name in names:
            if not re.match(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", name):
                raise ApiError(400, "Invalid value for field 'resource.name': '%s'." % name)
        return gpus

    @staticmethod
    def _check_scheduling(scheduling):
        """The scheduling rules of the Compute v1 schema text (``Scheduling``): Spot VMs cannot restart on their own
        or live-migrate (like preemptible ones: "Scheduling must have preemptible be false when AutomaticRestart is
        true"), ``instanceTerminationAction`` means something only for Spot VMs and VMs with a run time limit, and a
        run time limit (``maxRunDuration`` / ``terminationTime``) needs the action to take at its end."""
        spot = scheduling.get("provisioningModel") == "SPOT" or scheduling.get("preemptible")
        limited = scheduling.get("maxRunDuration") or scheduling.get("terminationTime")
        if spot and scheduling.get("automaticRestart") is True:
            raise ApiError(400, "Invalid value for field 'resource.scheduling.automaticRestart': 'true'. Scheduling "
                                "must have automaticRestart be false when provisioningModel is SPOT.")
        if spot and scheduling.get("onHostMaintenance", "TERMINATE") != "TERMINATE":
            raise ApiError(400, "Invalid value for field 'resource.scheduling.onHostMaintenance': '%s'. Spot VMs "
                                "cannot live-migrate." % scheduling["onHostMaintenance"])
        action = scheduling.get("instanceTerminationAction")
        if action is not None and action not in ("STOP", "DELETE"):
            raise ApiError(400, "Invalid value for field 'resource.scheduling.instanceTerminationAction': '%s'."
                           % action)
        if action and not spot and not limited:
            raise ApiError(400, "Invalid value for field 'resource.scheduling.instanceTerminationAction': '%s'. "
                                "It can be set only for Spot VMs or VMs with maxRunDuration or terminationTime."
                           % action)
        if limited and not action:
            raise ApiError(400, "Invalid value for field 'resource.scheduling.instanceTerminationAction': ''. "
                                "maxRunDuration and terminationTime need an instanceTerminationAction.")
        duration = scheduling.get("maxRunDuration")
        if duration is not None:
            seconds = int((duration or {}).get("seconds") or 0)
            # "Span of time at a resolution of a second. Must be from 0 to 315,576,000,000 inclusive"; the
            # documented range of a run duration is 30 seconds to 120 days
            if not 30 <= seconds <= 120 * 86400:
                raise ApiError(400, "Invalid value for field 'resource.scheduling.maxRunDuration.seconds': '%s'. "
                                    "Must be between 30 seconds and 120 days." % seconds)

    # -- reservations (made by hand in a project: the collection only reads them) -----------------------------------
    def add_reservation(self, zone, name, machine_type, count, in_use=0, status="READY"):
        with self.lock:
            self.reservations[(zone, name)] = {
                "kind": "compute#reservation", "id": str(next(self.ids)), "name": name, "status": status,
                "zone": self._p("zones", zone), "selfLink": self._p("zones", zone, "reservations", name),
                "creationTimestamp": now_iso(), "specificReservationRequired": True,
                "specificReservation": {"count": str(count), "inUseCount": str(in_use),
                                        "instanceProperties": {"machineType": machine_type}}}

    def do_reservations_get(self, params, query, body):
        found = self.reservations.get((params["zone"], params["reservation"]))
        if found is None:
            raise not_found("reservation", "projects/%s/zones/%s/reservations/%s"
                            % (self.project, params["zone"], params["reservation"]))
        return copy.deepcopy(found)

    def _reservation_error(self, zone, props, count):
        """A launch that must consume a specific reservation: refused at once (400) when the reservation is not in
        the zone or not of the machine type; an operation error when it has too few free instances. Else ``None``,
        and the instances are counted in its ``inUseCount``."""
        affinity = props.get("reservationAffinity") or {}
        if affinity.get("consumeReservationType") != "SPECIFIC_RESERVATION":
            return None
        if affinity.get("key") not in ("compute.googleapis.com/reservation-name", "googleapis.com/reservation-name"):
            raise ApiError(400, "Invalid value for field 'resource.reservationAffinity.key': '%s'."
                           % affinity.get("key"))
        names = affinity.get("values") or []
        found = self.reservations.get((zone, names[0].rsplit("/", 1)[-1])) if len(names) == 1 else None
        if found is None:
            raise ApiError(400, "Invalid value for field 'resource.reservationAffinity.values': '%s'. The specified "
                                "reservation does not exist in zone %s." % (names, zone))
        sku = found["specificReservation"]
        mname = props.get("machineType", "").rsplit("/", 1)[-1]
        if sku["instanceProperties"]["machineType"] != mname:
            raise ApiError(400, "Invalid value for field 'resource.machineType': '%s'. The instance properties do "
                                "not match reservation %s." % (mname, found["name"]))
        if int(sku["count"]) - int(sku["inUseCount"]) < count:
            return [{"code": "RESERVATION_CAPACITY_EXCEEDED",
                     "message": "Specified reservations [%s] do not have available resources for the request."
                                % found["name"]}]
        sku["inUseCount"] = str(int(sku["inUseCount"]) + count)
        return None

    def _capacity_error(self, zone, props, count, gpus):
        if zone in self.stockout:
            return [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
                     "message": "The zone 'projects/%s/zones/%s' does not have enough resources available to fulfill "
                                "the request.  '(resource type:compute)'." % (self.project, zone)}]
        if self.quota and gpus:
            region = zone.rsplit("-", 1)[0]
            metric, limit = self.quota["metric"], self.quota.get("limit", 0)
            return [{"code": "QUOTA_EXCEEDED",
                     "message": "Quota '%s' exceeded.  Limit: %.1f in region %s." % (metric, limit, region),
                     "errorDetails": [{"quotaInfo": {"metricName": "compute.googleapis.com/%s" % metric.lower(),
                                                     "limitName": "%s-per-project-region" % metric,
                                                     "dimensions": {"region": region}, "limit": limit}}]}]
        return None

    def _new_instance(self, zone, name, props):
        mname = props["machineType"].rsplit("/", 1)[-1]
        ip = next(self.ips)
        nics = []
        for nic in props.get("networkInterfaces") or [{}]:
            net = (nic.get("network") or "default").rsplit("/", 1)[-1]
            out = {"kind": "compute#networkInterface", "name": "nic0", "network": self._p("global", "networks", net),
                   "networkIP": "10.128.%d.%d" % (ip // 250, ip % 250 + 2), "stackType": "IPV4_ONLY"}
            out["subnetwork"] = nic.get("subnetwork") or self._p("regions", zone.rsplit("-", 1)[0], "subnetworks",
                                                                 "default")
            # "If there are no accessConfigs specified, then this instance will have no external internet access"
            if nic.get("accessConfigs"):
                out["accessConfigs"] = [dict(a, kind="compute#accessConfig") for a in nic["accessConfigs"]]
            nics.append(out)
        labels = dict(props.get("labels") or {})
        inst = {
            "kind": "compute#instance", "id": str(next(self.ids)), "name": name, "status": "PROVISIONING",
            "creationTimestamp": now_iso(), "zone": self._p("zones", zone),
            "machineType": self._p("zones", zone, "machineTypes", mname), "labels": labels,
            "labelFingerprint": fingerprint(labels), "tags": dict(props.get("tags") or {}, fingerprint="x"),
            "metadata": dict(props.get("metadata") or {}, fingerprint="x", kind="compute#metadata"),
            "networkInterfaces": nics, "disks": [{"boot": True, "autoDelete": True, "deviceName": name}],
            "scheduling": props.get("scheduling") or {"onHostMaintenance": "MIGRATE", "automaticRestart": True},
            "guestAccelerators": [dict(a, acceleratorType=self._p("zones", zone, "acceleratorTypes",
                                                                  a["acceleratorType"].rsplit("/", 1)[-1]))
                                  for a in props.get("guestAccelerators") or []],
            "resourcePolicies": [self._p("regions", zone.rsplit("-", 1)[0], "resourcePolicies", p.rsplit("/", 1)[-1])
                                 for p in props.get("resourcePolicies") or []],
            "selfLink": self._p("zones", zone, "instances", name),
            "_zone": zone, "_created": time.monotonic(),
            "_nat": "34.%d.%d.%d" % (ip // 65536 % 256, ip // 256 % 256, ip % 256),
        }
        if not inst["guestAccelerators"]:
            del inst["guestAccelerators"]
        if not inst["resourcePolicies"]:
            del inst["resourcePolicies"]
        self.instances[self._key(zone, name)] = inst

    def do_instances_bulkInsert(self, params, query, body):
        zone = params["zone"]
        if query.get("requestId") in self.request_ids:
            return self.operations[self.request_ids[query["requestId"]]]["op"]
        props = body.get("instanceProperties")
        if not props or body.get("sourceInstanceTemplate"):
            raise ApiError(501, "the double implements bulkInsert with instanceProperties only", "notImplemented")
        names = sorted(body.get("perInstanceProperties") or {})
        count = int(body.get("count") or 0)
        if not names or len(names) != count:
            raise ApiError(400, "Invalid value for field 'resource.count': the double needs one perInstanceProperties "
                                "entry per instance")
        if int(body.get("minCount") or count) > count:
            raise ApiError(400, "Invalid value for field 'resource.minCount': greater than count")
        gpus = self._check_properties(zone, props, names)
        error = self._capacity_error(zone, props, count, gpus) or self._reservation_error(zone, props, count)
        if error is None:
            taken = [n for n in names if self._key(zone, n) in self.instances]
            if taken:
                error = [{"code": "RESOURCE_ALREADY_EXISTS",
                          "message": "The resource 'projects/%s/zones/%s/instances/%s' already exists"
                                     % (self.project, zone, taken[0])}]

        def effect():
            for name in names:
                self._new_instance(zone, name, props)
        return self._operation("bulkInsert", self._p("zones", zone, "instances", names[0]), ("zone", zone), query,
                               effect=effect, error=error)

    def do_instances_insert(self, params, query, body):
        zone = params["zone"]
        if query.get("requestId") in self.request_ids:
            return self.operations[self.request_ids[query["requestId"]]]["op"]
        name = body.get("name") or ""
        gpus = self._check_properties(zone, body, [name])
        error = self._capacity_error(zone, body, 1, gpus)
        if error is None and self._key(zone, name) in self.instances:
            raise ApiError(409, "The resource 'projects/%s/zones/%s/instances/%s' already exists" % (
                self.project, zone, name), "alreadyExists")

        def effect():
            self._new_instance(zone, name, body)
        return self._operation("insert", self._p("zones", zone, "instances", name), ("zone", zone), query,
                               effect=effect, error=error)

    def do_instances_delete(self, params, query, body):
        zone, name = params["zone"], params["instance"]
        if query.get("requestId") in self.request_ids:
            return self.operations[self.request_ids[query["requestId"]]]["op"]
        inst = self._instance(zone, name)
        key = self._key(zone, name)

        def effect():
            inst["status"] = "STOPPING"

        def finish():
            self.instances.pop(key, None)
        return self._operation("delete", self._p("zones", zone, "instances", name), ("zone", zone), query,
                               effect=effect, finish=finish)

    def do_instances_setLabels(self, params, query, body):
        zone, name = params["zone"], params["instance"]
        if query.get("requestId") in self.request_ids:
            return self.operations[self.request_ids[query["requestId"]]]["op"]
        inst = self._instance(zone, name)
        if body.get("labelFingerprint") != inst["labelFingerprint"]:
            raise ApiError(412, "Labels fingerprint either invalid or resource labels have changed", "conditionNotMet")
        labels = dict(body.get("labels") or {})
        inst["labels"] = labels
        inst["labelFingerprint"] = fingerprint(labels)
        return self._operation("setLabels", self._p("zones", zone, "instances", name), ("zone", zone), query)

    def do_instances_start(self, params, query, body):
        zone, name = params["zone"], params["instance"]
        inst = self._instance(zone, name)

        def effect():
            inst["status"] = "STAGING"
            inst["_created"] = time.monotonic() - self.boot_s / 2
        return self._operation("start", self._p("zones", zone, "instances", name), ("zone", zone), query,
                               effect=effect)

    def do_instances_stop(self, params, query, body):
        zone, name = params["zone"], params["instance"]
        inst = self._instance(zone, name)

        def finish():
            inst["status"] = "TERMINATED"
        return self._operation("stop", self._p("zones", zone, "instances", name), ("zone", zone), query,
                               finish=finish)

    # -- firewalls --------------------------------------------------------------------------
    def do_firewalls_list(self, params, query, body):
        return self._list("firewall", [self.firewalls[n] for n in sorted(self.firewalls)], query)

    def do_firewalls_get(self, params, query, body):
        if params["firewall"] not in self.firewalls:
            raise not_found("firewall", "projects/%s/global/firewalls/%s" % (self.project, params["firewall"]))
        return self.firewalls[params["firewall"]]

    def _firewall_semantics(self, fw):
        net = (fw.get("network") or "default").rsplit("/", 1)[-1]
        if net not in self.networks:
            raise ApiError(400, "Invalid value for field 'resource.network': '%s'. The referenced network resource "
                                "cannot be found." % fw.get("network"))
        fw["network"] = self._p("global", "networks", net)
        fw.setdefault("direction", "INGRESS")
        fw.setdefault("priority", 1000)
        # what the service fills in on every rule (fields the collection does not send)
        fw.setdefault("logConfig", {"enable": False})
        fw.setdefault("disabled", False)
        if fw["direction"] == "INGRESS" and not fw.get("sourceRanges") and not fw.get("sourceTags") and not fw.get(
                "sourceServiceAccounts"):
            fw["sourceRanges"] = ["0.0.0.0/0"]
        ranges = fw.get("sourceRanges") or []
        if any(":" in r for r in ranges) and any(":" not in r for r in ranges):
            raise ApiError(400, "Invalid value for field 'resource.sourceRanges': IPv4 and IPv6 ranges cannot be mixed")

    def do_firewalls_insert(self, params, query, body):
        if query.get("requestId") in self.request_ids:
            return self.operations[self.request_ids[query["requestId"]]]["op"]
        name = body.get("name") or ""
        if name in self.firewalls:
            raise ApiError(409, "The resource 'projects/%s/global/firewalls/%s' already exists" % (self.project, name),
                           "alreadyExists")
        fw = copy.deepcopy(body)
        self._firewall_semantics(fw)
        fw.update(kind="compute#firewall", id=str(next(self.ids)), creationTimestamp=now_iso(),
                  selfLink=self._p("global", "firewalls", name))

        def effect():
            self.firewalls[name] = fw
        return self._operation("insert", fw["selfLink"], ("global",), query, effect=effect)

    def do_firewalls_patch(self, params, query, body):
        if query.get("requestId") in self.request_ids:
            return self.operations[self.request_ids[query["requestId"]]]["op"]
        name = params["firewall"]
        current = self.do_firewalls_get(params, query, None)
        merged = copy.deepcopy(current)
        merged.update(copy.deepcopy(body))
        self._firewall_semantics(merged)

        def effect():
            self.firewalls[name] = merged
        return self._operation("patch", current["selfLink"], ("global",), query, effect=effect)

    def do_firewalls_delete(self, params, query, body):
        if query.get("requestId") in self.request_ids:
            return self.operations[self.request_ids[query["requestId"]]]["op"]
        name = params["firewall"]
        current = self.do_firewalls_get(params, query, None)

        def finish():
            self.firewalls.pop(name, None)
        return self._operation("delete", current["selfLink"], ("global",), query, finish=finish)

    # -- resource policies ----------------------------------------------------------------------
    def _policy(self, region, name):
        policy = self.policies.get((region, name))
        if policy is None:
            raise not_found("resourcePolicy", "projects/%s/regions/%s/resourcePolicies/%s" % (self.project, region,
                                                                                              name))
        return policy

    def do_resourcePolicies_get(self, params, query, body):
        return self._policy(params["region"], params["resourcePolicy"])

    def do_resourcePolicies_list(self, params, query, body):
        return self._list("resourcePolicy", [p for (r, _n), p in sorted(self.policies.items())
                                             if r == params["region"]], query)

    def do_resourcePolicies_aggregatedList(self, params, query, body):
        scoped = dict(("regions/%s" % r, []) for r in sorted(set(z.rsplit("-", 1)[0] for z in ZONES)))
        for (region, _name), policy in sorted(self.policies.items()):
            scoped["regions/%s" % region].append(policy)
        return self._aggregated("resourcePolicy", "resourcePolicies", scoped, query)

    def do_resourcePolicies_insert(self, params, query, body):
        if query.get("requestId") in self.request_ids:
            return self.operations[self.request_ids[query["requestId"]]]["op"]
        region, name = params["region"], body.get("name") or ""
        if (region, name) in self.policies:
            raise ApiError(409, "The resource 'projects/%s/regions/%s/resourcePolicies/%s' already exists"
                           % (self.project, region, name), "alreadyExists")
        policy = copy.deepcopy(body)
        policy.update(kind="compute#resourcePolicy", id=str(next(self.ids)), status="READY",
                      region=self._p("regions", region), selfLink=self._p("regions", region, "resourcePolicies", name))

        def effect():
            self.policies[(region, name)] = policy
        return self._operation("insert", policy["selfLink"], ("region", region), query, effect=effect)

    def do_resourcePolicies_delete(self, params, query, body):
        if query.get("requestId") in self.request_ids:
            return self.operations[self.request_ids[query["requestId"]]]["op"]
        region, name = params["region"], params["resourcePolicy"]
        policy = self._policy(region, name)
        users = [i["name"] for i in self.instances.values()
                 if any(p.endswith("/resourcePolicies/" + name) and "/regions/%s/" % region in p
                        for p in i.get("resourcePolicies") or [])]
        if users:
            raise ApiError(400, "The resource_policy resource 'projects/%s/regions/%s/resourcePolicies/%s' is already "
                                "being used by 'projects/%s/zones/.../instances/%s'" % (self.project, region, name,
                                                                                        self.project, users[0]),
                           "resourceInUseByAnotherResource")

        def finish():
            self.policies.pop((region, name), None)
        return self._operation("delete", policy["selfLink"], ("region", region), query, finish=finish)

    # -- tokens ------------------------------------------------------------------------------------
    def token(self, form):
        assertion = (form.get("assertion") or [""])[0]
        if (form.get("grant_type") or [""])[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer" or \
                assertion.count(".") != 2:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT assertion"}
        claims = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "==").decode())
        if "compute" not in claims.get("scope", ""):
            return 400, {"error": "invalid_scope", "error_description": "no compute scope"}
        self.tokens += 1
        return 200, {"access_token": "double-token-%d" % self.tokens, "expires_in": 3600, "token_type": "Bearer"}


def _handler(double):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status, payload, base=""):
            data = json.dumps(payload).replace("{BASE}", base).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_CONNECT(self):  # pylint: disable=invalid-name
            """HTTPS proxy mode (for a peer with no endpoint option): answer every tunnel ourselves, over TLS."""
            if double.tls_context is None:
                self.send_error(405)
                return
            self.send_response(200, "Connection established")
            self.end_headers()
            self.connection = double.tls_context.wrap_socket(self.connection, server_side=True)
            self.rfile = self.connection.makefile("rb", self.rbufsize)
            self.wfile = self.connection.makefile("wb", 0)
            self.tunnel_host = self.path.split(":", 1)[0]
            self.close_connection = False
            while not self.close_connection:
                self.handle_one_request()

        def _serve(self, verb):
            parts = urlsplit(self.path)
            host = getattr(self, "tunnel_host", None)
            base = ("https://%s%s" % (host, API_PREFIX)) if host else (
                "http://%s%s" % (self.headers.get("Host") or "127.0.0.1", API_PREFIX))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = parts.path
            if path.startswith("http"):
                path = urlsplit(path).path
            if path == "/token" or path.endswith("/token"):
                status, payload = double.token(parse_qs(raw.decode()))
                return self._send(status, payload)
            query = dict((k, v[-1]) for k, v in parse_qs(parts.query, keep_blank_values=True).items())
            try:
                if not path.startswith(API_PREFIX):
                    raise ApiError(404, "Not Found: %s" % path, "notFound")
                if not (self.headers.get("Authorization") or "").startswith("Bearer double-token-"):
                    raise ApiError(401, "Request is missing required authentication credential.", "required")
                body = json.loads(raw.decode()) if raw else None
                lost = False
                with double.lock:
                    roll = double.rng.random() if double.throttle else 1.0
                    if roll < double.throttle:
                        double.throttled += 1
                        if roll < double.throttle / 2:
                            raise ApiError(429, "Rate Limit Exceeded", "rateLimitExceeded")
                        lost = True
                result = double.handle(verb, path[len(API_PREFIX):], query, body, base)
                if lost:
                    raise ApiError(503, "The service is currently unavailable.", "backendError")
                self._send(200, result, base)
            except ApiError as exc:
                self._send(exc.status, exc.body(), base)
            except Exception as exc:  # pylint: disable=broad-except
                self._send(500, ApiError(500, "double crashed: %r" % exc, "backendError").body(), base)

        def do_GET(self):  # pylint: disable=invalid-name
            self._serve("GET")

        def do_POST(self):  # pylint: disable=invalid-name
            self._serve("POST")

        def do_DELETE(self):  # pylint: disable=invalid-name
            self._serve("DELETE")

        def do_PATCH(self):  # pylint: disable=invalid-name
            self._serve("PATCH")

    return Handler


def service_account_file(path, double, project=None, email="aiinfra-test@aiinfra-test.iam.gserviceaccount.com"):
    """Write a service-account key file whose token_uri is the double's; return its path."""
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import rsa  # pylint: disable=import-outside-toplevel
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": project or double.project, "private_key_id": "0" * 40,
            "private_key": pem, "client_email": email, "client_id": "1", "token_uri": double.token_uri,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth"}
    with open(path, "w") as handle:
        json.dump(info, handle)
    os.chmod(path, 0o600)
    return path


def make_tls(directory, hosts=("compute.googleapis.com", "www.googleapis.com")):
    """A local CA and a server certificate for ``hosts`` (to serve a peer that has no endpoint option through
    ``HTTPS_PROXY``): returns ``(certfile, keyfile, cafile)``."""
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    end = start + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("gce double CA")).issuer_name(name("gce double CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name(hosts[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tuple(os.path.join(directory, n) for n in ("server.pem", "server.key", "ca.pem"))
    with open(paths[0], "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    with open(paths[2], "wb") as handle:
        handle.write(ca.public_bytes(serialization.Encoding.PEM))
    return paths


if __name__ == "__main__":
    served = ComputeDouble()
    sys.stdout.write("Compute API double on %s (token_uri %s)\n" % (served.url, served.token_uri))
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        served.stop()
