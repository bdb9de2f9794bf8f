"""A real EC2 API server for tests: moto in server mode, behind a fault-injecting proxy of our own.

moto answers EC2's query protocol over HTTP, but it does not honour ClientToken idempotency, accepts
unknown instance types, launches MinCount (not MaxCount) instances and has no placement groups (HTTP 500).
:class:`Ec2Proxy` sits in front of it and adds what real EC2 does there, plus the failures a test needs:

- ClientToken: the same token and parameters get the original reservation back; other parameters get
  ``IdempotentParameterMismatch``; a token whose instances were all terminated, ``IdempotentInstanceTerminated``.
- RunInstances with an unknown instance type: ``InvalidParameterValue``, as EC2 answers.
- Placement groups: create / describe (names, ids, filters incl. tags) / delete (``InUse`` while a live
  instance was launched into the group); RunInstances into an unknown group fails.
- DeleteSecurityGroup of a group a live instance uses: ``DependencyViolation``.
- Faults: ``throttle_rate`` of all calls answered 503 (``RequestLimitExceeded`` / ``Unavailable``); half of the
  faulted calls that change something are forwarded first (the change happens, the answer is lost);
  ``no_capacity_azs`` answer ``InsufficientInstanceCapacity``; ``vcpu_quota`` answers ``VcpuLimitExceeded``;
  ``hang_run_instances`` forwards RunInstances, then holds the answer until released and drops the
  connection (the controller killed after the call was sent); ``hide_new`` keeps a new reservation out of
  DescribeInstances answers until the next RunInstances call is answered (EC2's eventual consistency: a
  re-run cannot see the nodes the killed run launched); ``stuck_pending`` reports running instances as pending;
  ``denied_actions`` answer ``UnauthorizedOperation`` (403), as EC2 does without the IAM permission.
- ``calls`` counts every request by action (faulted ones included): the API-call count of a run.
"""

from __future__ import annotations

import collections
import http.client
import http.server
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl, urlencode, urlparse
from xml.sax.saxutils import escape

NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
ET.register_namespace("", NS)
MUTATING = re.compile(r"^(Run|Create|Delete|Authorize|Revoke|Import|Terminate|Start|Stop|Modify|Associate)")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer(object):
    """``moto_server`` on a loopback port of its own, for the life of the object."""

    def __init__(self):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("moto_server exited with %s" % self.proc.returncode)
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not start on port %d" % self.port)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _error(code, message, status=400):
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code><Message>%s</Message>'
            '</Error></Errors><RequestID>%s</RequestID></Response>' % (code, escape(message), uuid.uuid4()))
    return status, body.encode()


def _ok(action, inner):
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse xmlns="%s"><requestId>%s</requestId>%s</%sResponse>' % (
        action, NS, uuid.uuid4(), inner, action)
    return 200, body.encode()


def _indexed(params, prefix):
    """``Prefix.1``, ``Prefix.2`` ... -> list of values."""
    out = []
    i = 1
    while "%s.%d" % (prefix, i) in params:
        out.append(params["%s.%d" % (prefix, i)])
        i += 1
    return out


def _filters(params):
    out = {}
    i = 1
    while "Filter.%d.Name" % i in params:
        out[params["Filter.%d.Name" % i]] = _indexed(params, "Filter.%d.Value" % i)
        i += 1
    return out


def _tag_specs(params, resource_type):
    tags = {}
    i = 1
    while "TagSpecification.%d.ResourceType" % i in params:
        if params["TagSpecification.%d.ResourceType" % i] == resource_type:
            j = 1
            while "TagSpecification.%d.Tag.%d.Key" % (i, j) in params:
                tags[params["TagSpecification.%d.Tag.%d.Key" % (i, j)]] = params.get(
                    "TagSpecification.%d.Tag.%d.Value" % (i, j), "")
                j += 1
        i += 1
    return tags


def _find(elem, path):
    return elem.findall(".//{*}%s" % path)


class Ec2Proxy(object):
    """The proxy; see the module doc. ``url`` is what ``endpoint_url`` should point at."""

    def __init__(self, upstream, seed=1234):
        self.upstream = urlparse(upstream)
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.calls = collections.Counter()
        self.requests = []
        # faults
        self.throttle_rate = 0.0
        self.no_capacity_azs = set()
        self.vcpu_quota = None
        self.hang_run_instances = False
        self.run_instances_sent = threading.Event()
        self.release = threading.Event()
        self.hide_new = False
        self.stuck_pending = False
        # actions the caller's role may not call: EC2's answer to a missing IAM permission
        self.denied_actions = set()
        self.faults = collections.Counter()
        # what EC2 keeps that moto does not
        self.tokens = {}
        self.token_locks = collections.defaultdict(threading.Lock)
        self.placement_groups = {}
        # capacity reservations (moto has none): id -> {InstanceType, AvailabilityZone, TotalInstanceCount,
        # AvailableInstanceCount, State, ReservationType}; see add_capacity_reservation
        self.capacity_reservations = {}
        self.group_instances = collections.defaultdict(set)
        self.hidden = set()
        self._subnet_az = {}
        self._types = {}
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = dict((k, v) for k, v in self.headers.items() if k.lower() not in ("host", "content-length"))
                result = proxy.handle(self.path, headers, body)
                if result is None:  # dropped connection
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                status, payload = result
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def reset_faults(self):
        self.throttle_rate = 0.0
        self.no_capacity_azs = set()
        self.vcpu_quota = None
        self.hang_run_instances = False
        self.run_instances_sent.clear()
        self.release.clear()
        self.hide_new = False
        self.stuck_pending = False

    def total_calls(self):
        return sum(self.calls.values())

    # -- plumbing --------------------------------------------------------------
    def forward(self, path, headers, params):
        body = urlencode(params).encode()
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            conn.request("POST", path, body=body, headers=dict(headers, **{"Content-Length": str(len(body))}))
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def _internal(self, headers, action, **params):
        """A call of the proxy's own to moto (not counted)."""
        params = dict(params, Action=action, Version="2016-11-15")
        status, body = self.forward("/", headers, params)
        return status, ET.fromstring(body)

    def _instance_states(self, headers, ids):
        if not ids:
            return {}
        params = dict(("InstanceId.%d" % (i + 1), iid) for i, iid in enumerate(sorted(ids)))
        status, root = self._internal(headers, "DescribeInstances", **params)
        states = {}
        if status == 200:
            for inst in _find(root, "instancesSet/{*}item"):
                states[inst.findtext("{*}instanceId")] = inst.findtext("{*}instanceState/{*}name")
        return states

    def _az_of(self, headers, params):
        zone = params.get("Placement.AvailabilityZone")
        subnet = params.get("SubnetId") or params.get("NetworkInterface.1.SubnetId")
        if zone or not subnet:
            return zone
        if subnet not in self._subnet_az:
            status, root = self._internal(headers, "DescribeSubnets", **{"SubnetId.1": subnet})
            if status == 200:
                for item in _find(root, "subnetSet/{*}item"):
                    self._subnet_az[item.findtext("{*}subnetId")] = item.findtext("{*}availabilityZone")
        return self._subnet_az.get(subnet)

    def _type_info(self, headers, itype):
        if itype not in self._types:
            status, root = self._internal(headers, "DescribeInstanceTypes", **{"InstanceType.1": itype})
            vcpus = None
            if status == 200:
                for item in _find(root, "instanceTypeSet/{*}item"):
                    vcpus = int(item.findtext("{*}vCpuInfo/{*}defaultVCpus") or 0)
            self._types[itype] = vcpus
        return self._types[itype]

    # -- the request -------------------------------------------------------------
    def handle(self, path, headers, body):
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        action = params.get("Action", "?")
        with self.lock:
            self.calls[action] += 1
            faulted = self.throttle_rate and self.rng.random() < self.throttle_rate
            lose_answer = faulted and MUTATING.match(action) and self.rng.random() < 0.5
            code = self.rng.choice(["RequestLimitExceeded", "Unavailable"]) if faulted else None
        if faulted:
            with self.lock:
                self.faults["lost answer" if lose_answer else code] += 1
        if faulted and not lose_answer:
            return _error(code, "Request limit exceeded." if code == "RequestLimitExceeded"
                          else "The service is unavailable. Please try again shortly.", 503)
        if action in self.denied_actions:
            return _error("UnauthorizedOperation", "You are not authorized to perform this operation. User: "
                          "arn:aws:iam::123456789012:user/test is not authorized to perform: ec2:%s" % action, 403)
        handler = getattr(self, "_do_%s" % action, None)
        result = handler(path, headers, params) if handler else self.forward(path, headers, params)
        if lose_answer:
            return _error("InternalError", "An internal error has occurred.", 500)
        return result

    def add_capacity_reservation(self, itype, zone, total, available=None, kind="default", state="active"):
        """A capacity reservation (``kind`` default or capacity-block) as if made by hand; returns its id."""
        rid = "cr-%017x" % random.Random(len(self.capacity_reservations) + 7).getrandbits(68)
        self.capacity_reservations[rid] = {
            "InstanceType": itype, "AvailabilityZone": zone, "TotalInstanceCount": total,
            "AvailableInstanceCount": total if available is None else available, "State": state,
            "ReservationType": kind, "InstanceMatchCriteria": "targeted" if kind == "capacity-block" else "open"}
        return rid

    def _do_DescribeCapacityReservations(self, path, headers, params):  # noqa: N802
        wanted = [v for k, v in sorted(params.items()) if k.startswith("CapacityReservationId.")]
        missing = [w for w in wanted if w not in self.capacity_reservations]
        if missing:
            return _error("InvalidCapacityReservationId.NotFound",
                          "The capacity reservation ID '%s' does not exist" % missing[0])
        items = []
        for rid in wanted or sorted(self.capacity_reservations):
            cr = self.capacity_reservations[rid]
            # "reported": what a look-up sees when someone else takes the reservation before the launch
            shown = dict((k, v) for k, v in cr.items() if k != "reported")
            shown["AvailableInstanceCount"] = cr.get("reported", cr["AvailableInstanceCount"])
            fields = "".join("<%s%s>%s</%s%s>" % (k[0].lower(), k[1:], escape(str(v)), k[0].lower(), k[1:])
                             for k, v in sorted(shown.items()))
            items.append("<item><capacityReservationId>%s</capacityReservationId>%s</item>" % (rid, fields))
        return _ok("DescribeCapacityReservations",
                   "<capacityReservationSet>%s</capacityReservationSet>" % "".join(items))

    def _reservation_error(self, params, itype, zone):
        """What EC2 answers for a launch into a capacity reservation that cannot take it, or None (and the
        reservation's free count is taken)."""
        rid = params.get("CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId")
        market = params.get("InstanceMarketOptions.MarketType")
        if not rid:
            if market == "capacity-block":
                return _error("InvalidParameterCombination", "A capacity-block launch needs a Capacity Block target.")
            return None
        cr = self.capacity_reservations.get(rid)
        if cr is None:
            return _error("InvalidCapacityReservationId.NotFound", "The capacity reservation ID '%s' does not exist"
                          % rid)
        if market == "spot":
            return _error("InvalidParameterCombination", "Spot instances cannot launch into a capacity reservation.")
        if (cr["ReservationType"] == "capacity-block") != (market == "capacity-block"):
            return _error("InvalidParameterCombination", "Capacity Blocks are launched into with MarketType "
                                                         "capacity-block, and only they.")
        if cr["InstanceType"] != itype or cr["AvailabilityZone"] != zone:
            return _error("InvalidParameterValue", "The instance's type or Availability Zone does not match capacity "
                                                   "reservation %s (%s in %s)." % (rid, cr["InstanceType"],
                                                                                   cr["AvailabilityZone"]))
        count = int(params.get("MaxCount", "1"))
        if cr["AvailableInstanceCount"] < count:
            return _error("ReservationCapacityExceeded", "There is not enough capacity in capacity reservation %s "
                                                         "for %d instance(s)." % (rid, count))
        cr["AvailableInstanceCount"] -= count
        return None

    def _do_RunInstances(self, path, headers, params):  # noqa: N802
        self.requests.append(dict(params))
        itype = params.get("InstanceType", "m1.small")
        vcpus = self._type_info(headers, itype)
        if vcpus is None:
            return _error("InvalidParameterValue", "Invalid value '%s' for InstanceType." % itype)
        group = params.get("Placement.GroupName")
        if group and group not in self.placement_groups:
            return _error("InvalidPlacementGroup.Unknown", "The Placement Group '%s' is unknown." % group)
        token = params.get("ClientToken")
        signature = json.dumps(sorted((k, v) for k, v in params.items() if k != "ClientToken"))
        lock = self.token_locks[token] if token else threading.Lock()
        with lock:
            if token and token in self.tokens:
                known = self.tokens[token]
                if known["signature"] != signature:
                    return _error("IdempotentParameterMismatch",
                                  "Arguments on this idempotent request are inconsistent with arguments used in "
                                  "previous request(s).")
                states = self._instance_states(headers, known["ids"])
                if known["ids"] and all(states.get(i) == "terminated" for i in known["ids"]):
                    return _error("IdempotentInstanceTerminated",
                                  "The client token you provided is associated with a resource that is already "
                                  "deleted. Please use a different client token.")
                with self.lock:
                    self.hidden.clear()
                return 200, known["body"]
            zone = self._az_of(headers, params)
            if zone in self.no_capacity_azs:
                return _error("InsufficientInstanceCapacity",
                              "We currently do not have sufficient %s capacity in the Availability Zone you requested "
                              "(%s). Our system will be working on provisioning additional capacity. You can currently "
                              "get %s capacity by not specifying an Availability Zone in your request or choosing "
                              "another Availability Zone." % (itype, zone, itype), 500)
            refused = self._reservation_error(params, itype, zone)
            if refused:
                return refused
            count = int(params.get("MaxCount", "1"))
            if self.vcpu_quota is not None and vcpus * int(params.get("MinCount", "1")) > self.vcpu_quota:
                return _error("VcpuLimitExceeded",
                              "You have requested more vCPU capacity than your current vCPU limit of %d allows for the "
                              "instance bucket that the specified instance type belongs to. Please visit "
                              "http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."
                              % self.vcpu_quota)
            forwarded = dict(params, MinCount=str(count))  # moto launches MinCount; EC2 launches MaxCount
            status, body = self.forward(path, headers, forwarded)
            if status == 200:
                root = ET.fromstring(body)
                ids = [e.text for e in _find(root, "instancesSet/{*}item/{*}instanceId")]
                reservation = root.findtext("{*}reservationId")
                if token:
                    self.tokens[token] = {"signature": signature, "body": body, "ids": ids}
                if group:
                    self.group_instances[group].update(ids)
                with self.lock:
                    self.hidden.clear()
                    if self.hide_new:
                        self.hidden.add(reservation)
        if status == 200 and self.hang_run_instances:
            self.run_instances_sent.set()
            self.release.wait(120)
            return None
        return status, body

    def _do_DescribeInstances(self, path, headers, params):  # noqa: N802
        status, body = self.forward(path, headers, params)
        if status != 200 or not (self.hidden or self.stuck_pending):
            return status, body
        root = ET.fromstring(body)
        with self.lock:
            for rset in _find(root, "reservationSet"):
                for item in list(rset):
                    if item.findtext("{*}reservationId") in self.hidden:
                        rset.remove(item)
        if self.stuck_pending:
            for state in _find(root, "instanceState"):
                if state.findtext("{*}name") == "running":
                    state.find("{*}name").text = "pending"
                    state.find("{*}code").text = "0"
        return status, ET.tostring(root, encoding="utf-8", xml_declaration=True)

    def _do_DeleteSecurityGroup(self, path, headers, params):  # noqa: N802
        gid = params.get("GroupId")
        if gid:
            status, root = self._internal(headers, "DescribeInstances", **{
                "Filter.1.Name": "instance.group-id", "Filter.1.Value.1": gid,
                "Filter.2.Name": "instance-state-name", "Filter.2.Value.1": "pending",
                "Filter.2.Value.2": "running", "Filter.2.Value.3": "stopping", "Filter.2.Value.4": "stopped",
                "Filter.2.Value.5": "shutting-down"})
            if status == 200 and _find(root, "instancesSet/{*}item"):
                return _error("DependencyViolation", "resource %s has a dependent object" % gid)
        return self.forward(path, headers, params)

    # -- placement groups (moto has none) -----------------------------------------
    def _pg_xml(self, pg):
        tags = "".join("<item><key>%s</key><value>%s</value></item>" % (escape(k), escape(v))
                       for k, v in sorted(pg["tags"].items()))
        return ("<groupName>%s</groupName><state>available</state><strategy>%s</strategy><groupId>%s</groupId>"
                "<groupArn>arn:aws:ec2:us-east-1:123456789012:placement-group/%s</groupArn><tagSet>%s</tagSet>"
                % (escape(pg["name"]), pg["strategy"], pg["id"], escape(pg["name"]), tags))

    def _do_CreatePlacementGroup(self, path, headers, params):  # noqa: N802
        name = params.get("GroupName")
        strategy = params.get("Strategy", "cluster")
        if not name:
            return _error("MissingParameter", "The request must contain the parameter groupName")
        if strategy not in ("cluster", "spread", "partition"):
            return _error("InvalidParameterValue", "Invalid value '%s' for strategy." % strategy)
        with self.lock:
            if name in self.placement_groups:
                return _error("InvalidPlacementGroup.Duplicate", "The Placement Group '%s' already exists." % name)
            pg = {"name": name, "strategy": strategy, "id": "pg-%s" % uuid.uuid4().hex[:17],
                  "tags": _tag_specs(params, "placement-group")}
            self.placement_groups[name] = pg
        return _ok("CreatePlacementGroup", "<return>true</return><placementGroup>%s</placementGroup>" % self._pg_xml(pg))

    def _do_DescribePlacementGroups(self, path, headers, params):  # noqa: N802
        names = _indexed(params, "GroupName")
        ids = _indexed(params, "GroupId")
        filters = _filters(params)
        with self.lock:
            groups = list(self.placement_groups.values())
        for name in names:
            if name not in self.placement_groups:
                return _error("InvalidPlacementGroup.Unknown", "The Placement Group '%s' is unknown." % name)
        out = []
        for pg in groups:
            if (names and pg["name"] not in names) or (ids and pg["id"] not in ids):
                continue
            keep = True
            for fname, values in filters.items():
                if fname == "group-name":
                    keep = keep and pg["name"] in values
                elif fname == "strategy":
                    keep = keep and pg["strategy"] in values
                elif fname == "state":
                    keep = keep and "available" in values
                elif fname.startswith("tag:"):
                    keep = keep and pg["tags"].get(fname[4:]) in values
                elif fname == "tag-key":
                    keep = keep and any(v in pg["tags"] for v in values)
                else:
                    return _error("InvalidParameterValue", "The filter '%s' is invalid" % fname)
            if keep:
                out.append(pg)
        return _ok("DescribePlacementGroups", "<placementGroupSet>%s</placementGroupSet>"
                   % "".join("<item>%s</item>" % self._pg_xml(pg) for pg in out))

    def _do_DeletePlacementGroup(self, path, headers, params):  # noqa: N802
        name = params.get("GroupName")
        with self.lock:
            if name not in self.placement_groups:
                return _error("InvalidPlacementGroup.Unknown", "The Placement Group '%s' is unknown." % name)
            ids = set(self.group_instances.get(name, ()))
        states = self._instance_states(headers, ids)
        if any(state not in ("terminated", None) for state in states.values()):
            return _error("InvalidPlacementGroup.InUse", "The placement group '%s' is in use and may not be deleted."
                          % name)
        with self.lock:
            self.placement_groups.pop(name, None)
            self.group_instances.pop(name, None)
        return _ok("DeletePlacementGroup", "<return>true</return>")
