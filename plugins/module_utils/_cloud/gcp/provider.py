# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``gcp`` cloud: a GPU cluster on Compute Engine (the v1 REST API through google-auth, no generated client).

The whole cluster is one ``instances.bulkInsert`` per zone tried (all or nothing unless ``min_count``), with a
``requestId`` derived from the cluster, the zone, the ranks and the request, so a retry or a re-run after the
controller died gets the first operation back instead of a second set. Ranks are in the names
(``<cluster>-<rank>``: bulkInsert names instances one by one but labels them all alike); a ``setLabels`` per node
adds the rank label afterwards. Nodes with GPUs get ``onHostMaintenance: TERMINATE``; machine families that allow
it share a compact placement policy (``aiinfra-<cluster>``, one per region). A stockout moves on to the next zone
of ``placements`` at once; a quota fails at once, naming the metric.
"""

from __future__ import annotations

import time

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.options import CLOUD
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import retry
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (
    CLUSTER_TAG, MANAGED_TAG, RANK_TAG, Prepared, Provider, fit_reservation)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CloudError, ConfigError, NotFoundError)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.api import session_for
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.firewall import GcpFirewall
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.shapes import (
    MARKER, MAX_REQUEST_GENERATIONS, NAME_RE, OPERATION_TIMEOUT, PROJECT_RE, REGION_RE, RESERVATION_RE, ZONE_RE,
    bulk_insert_body,
    check_labels, compact_policy_body, instance_filter, is_managed, labels_for, last, node_from_instance, owner_label,
    parse_image, policy_name, relative, request_id, supports_compact, zone_region)


class GcpProvider(GcpFirewall, Provider):
    """Compute Engine. Options: connection (project, credentials_file, endpoint_url, region) and the instance
    module's GCP options."""

    name = "gcp"
    cloud = CLOUD

    def __init__(self, options=None, log=None, api=None, sleep=time.sleep, clock=time.monotonic):
        super(GcpProvider, self).__init__(options, log)
        self._api = api
        self.sleep = sleep
        self.clock = clock

    @property
    def api(self):
        if self._api is None:
            self._api = session_for(self.opts, log=self.log, sleep=self.sleep)
        return self._api

    @property
    def project(self):
        return self.api.project

    def _zone_path(self, zone, *parts):
        return self.api.path("zones", zone, *parts)

    # -- checks ----------------------------------------------------------------
    def preflight(self, spec):
        """Offline checks of the options (no API call)."""
        opts = self.opts
        if opts.get("project") and not PROJECT_RE.fullmatch(opts["project"]):
            raise ConfigError("project %r is not a Google Cloud project id" % opts["project"],
                              hint="Project ids are 6-30 lowercase letters, digits and '-', e.g. my-training-project")
        if opts.get("region") and not REGION_RE.fullmatch(opts["region"]):
            raise ConfigError("region %r is not a Compute Engine region" % opts["region"], hint="e.g. us-central1")
        if not spec.instance_type:
            raise ConfigError("instance_type is required on cloud gcp", hint="A machine type, e.g. a3-highgpu-8g")
        if not spec.image:
            raise ConfigError("image is required on cloud gcp",
                              hint="e.g. projects/deeplearning-platform-release/global/images/family/"
                                   "common-cu124-debian-11")
        parse_image(spec.image)
        for entry in opts.get("placements") or []:
            zone = (entry or {}).get("zone")
            if not zone:
                raise ConfigError("a placement needs a zone on cloud gcp",
                                  hint="e.g. placements: [{zone: us-central1-a}, {zone: us-central1-b}]")
            if not ZONE_RE.fullmatch(zone):
                raise ConfigError("placement zone %r is not a Compute Engine zone name" % zone, hint="e.g. us-central1-a")
        if not opts.get("placements") and not opts.get("region"):
            raise ConfigError("placements or region is required on cloud gcp",
                              hint="List the zones to try, e.g. placements: [{zone: us-central1-a}]")
        self.check_min_count()
        reservation = (opts.get("reservation") or {}).get("id")
        if opts.get("reservation") and not reservation:
            raise ConfigError("reservation needs an id on cloud gcp", hint="e.g. reservation: {id: my-a3-reservation}")
        if reservation and not RESERVATION_RE.fullmatch(reservation):
            raise ConfigError("reservation %r is not a reservation name" % reservation,
                              hint="A name of the project (my-a3-reservation) or projects/PROJECT/reservations/NAME")
        if reservation and opts.get("spot"):
            raise ConfigError("Spot VMs cannot consume a reservation", hint="Set either spot or reservation")
        size = opts.get("root_volume_size")
        if size is not None and not 10 <= size <= 65536:
            raise ConfigError("root_volume_size must be 10..65536 GB, got %d" % size)
        for name in ("network", "subnetwork"):
            if opts.get(name) and not NAME_RE.fullmatch(last(opts[name])):
                raise ConfigError("%s %r is not a Compute Engine resource name" % (name, opts[name]))
        for acc in opts.get("accelerators") or []:
            if not (acc or {}).get("type") or int((acc or {}).get("count") or 0) < 1:
                raise ConfigError("an accelerator needs a type and a count of at least 1",
                                  hint="e.g. accelerators: [{type: nvidia-tesla-v100, count: 8}]")
        check_labels(labels_for(spec, 0))

    def preflight_create(self, spec, ranks, existing=(), check_mode=False):
        """Everything bulkInsert needs, looked up read-only (machine type, GPUs, image, network in each zone)."""
        return self._resolve(spec, ranks, existing)

    def _zones(self, existing, ranks):
        zones = []
        for entry in self.opts.get("placements") or []:
            if entry["zone"] not in zones:
                zones.append(entry["zone"])
        if not zones:
            region = self.opts["region"]
            found = self.api.items(self.api.path("zones"), params={"filter": "name eq %s-.*" % region})
            zones = sorted(z["name"] for z in found if zone_region(z["name"]) == region and z.get("status") != "DOWN")
            if not zones:
                raise ConfigError("region %s has no zones in project %s" % (region, self.project),
                                  hint="Check the region's name (e.g. us-central1), or list placements")
        live = [n for n in existing or () if n.zone and n.rank not in set(ranks)]
        if live:
            zone = sorted(n.zone for n in live)[0]
            if zone not in zones:
                raise ConfigError("the cluster's nodes are in %s but no placement is" % zone,
                                  hint="Add a placement in %s: a cluster's nodes stay in one zone" % zone)
            zones = [zone]
        return zones

    def _resolve(self, spec, ranks, existing=()):
        opts = self.opts
        accelerators = [dict(type=a["type"], count=int(a["count"])) for a in opts.get("accelerators") or []]
        tries, skipped, machine = [], [], None
        for zone in self._zones(existing, ranks):
            try:
                found = self.api.get(self._zone_path(zone, "machineTypes", spec.instance_type),
                                     context={"resource": "machine type %s in %s" % (spec.instance_type, zone)})
            except NotFoundError:
                self._zone_exists(zone)
                why = "machine type %s is not offered in %s" % (spec.instance_type, zone)
                skipped.append({"zone": zone, "error": why})
                continue
            built_in = found.get("accelerators") or []
            if built_in and accelerators:
                gpus = ", ".join("%d x %s" % (a.get("guestAcceleratorCount", 0), a.get("guestAcceleratorType"))
                                 for a in built_in)
                raise ConfigError("machine type %s has GPUs built in (%s); accelerators only go with N1 types"
                                  % (spec.instance_type, gpus),
                                  hint="Remove accelerators, or pick an N1 machine type (e.g. n1-standard-8)")
            missing = []
            for acc in accelerators:
                try:
                    self.api.get(self._zone_path(zone, "acceleratorTypes", acc["type"]),
                                 context={"resource": "GPU type %s in %s" % (acc["type"], zone)})
                except NotFoundError:
                    missing.append(acc["type"])
            if missing:
                skipped.append({"zone": zone, "error": "GPU type %s is not offered in %s" % (", ".join(missing), zone)})
                continue
            machine = found
            tries.append(zone)
        if not tries:
            raise ConfigError("no placement offers the request: %s" % "; ".join(s["error"] for s in skipped),
                              hint="Choose zones where the machine type and GPUs are offered (gcloud compute "
                                   "machine-types list / accelerator-types list --filter=zone:ZONE)")
        tries, misfits, reservation = self._reservation(spec, ranks, existing, [{"zone": z} for z in tries])
        skipped += misfits
        image = self._image(spec.image)
        network = self._network()
        subnetworks = self._subnetworks(sorted(set(zone_region(t["zone"]) for t in tries)))
        gpus = sum(a.get("guestAcceleratorCount", 0) for a in machine.get("accelerators") or [])
        gpus += sum(a["count"] for a in accelerators)
        return Prepared(tries=tries, skipped=skipped, facts={
            "reservation": reservation,
            "machine_type": spec.instance_type, "gpus": gpus,
            "guest_cpus": machine.get("guestCpus"), "image": image["selfLink"], "image_name": image.get("name"),
            "network": network, "subnetworks": subnetworks, "accelerators": accelerators,
            "spot": bool(opts.get("spot")), "root_volume_size": opts.get("root_volume_size"),
            "compact": supports_compact(spec.instance_type),
            "public_ip": opts.get("public_ip") is not False,
        })

    def _reservation(self, spec, ranks, existing, tries):
        """Look the reservation up in each placement's zone; settle which tries consume it (:func:`fit_reservation`)."""
        name = (self.opts.get("reservation") or {}).get("id")
        if not name:
            return tries, [], None
        project, short = (name.split("/")[1], last(name)) if name.startswith("projects/") else (self.project, name)
        found = {}
        for trial in tries:
            path = "projects/%s/zones/%s/reservations/%s" % (project, trial["zone"], short)
            try:
                what = "reservation %s in %s" % (name, trial["zone"])
                found[trial["zone"]] = self.api.get(path, context={"resource": what})
            except NotFoundError:
                continue
        if not found:
            raise ConfigError("reservation %s does not exist in any placement's zone (%s)"
                              % (name, ", ".join(t["zone"] for t in tries)),
                              hint="gcloud compute reservations list shows yours and their zones")
        zone, res = sorted(found.items())[0]
        sku = res.get("specificReservation") or {}
        mtype = last((sku.get("instanceProperties") or {}).get("machineType") or "")
        free = int(sku.get("count") or 0) - int(sku.get("inUseCount") or 0)
        if res.get("status") not in (None, "READY"):
            raise ConfigError("reservation %s in %s is %s, not READY" % (name, zone, res.get("status")))

        def fits(trial):
            if trial["zone"] not in found:
                return "%s: the reservation is in %s" % (trial["zone"], zone)
            if mtype != spec.instance_type:
                return "%s %s: the reservation is for %s" % (trial["zone"], spec.instance_type, mtype)
            return None
        tries, skipped = fit_reservation(tries, name, fits, free, self.minimum_count(ranks, existing),
                                         "%s in %s" % (mtype, zone))
        return tries, skipped, {"id": name, "zone": zone, "machine_type": mtype, "free": free}

    def _zone_exists(self, zone):
        try:
            self.api.get(self.api.path("zones", zone), context={"resource": "zone %s" % zone})
        except NotFoundError:
            raise ConfigError("zone %s does not exist in project %s" % (zone, self.project),
                              hint="Check the placements' zones (gcloud compute zones list)")

    def _image(self, image):
        project, name, family = parse_image(image)
        path = "projects/%s/global/images/%s%s" % (project, "family/" if family else "", name)
        try:
            found = self.api.get(path, context={"resource": "image %s" % image})
        except (NotFoundError, ConfigError) as exc:
            raise ConfigError("image %s does not exist or is not readable" % image,
                              hint="Check the project and %s name (gcloud compute images list --project %s); "
                                   "Compute Engine said: %s" % ("family" if family else "image", project, exc.message),
                              code=exc.code)
        if (found.get("deprecated") or {}).get("state") in ("DELETED", "OBSOLETE"):
            raise ConfigError("image %s is %s" % (found.get("name"), found["deprecated"]["state"].lower()))
        found["selfLink"] = relative(found.get("selfLink") or path)
        return found

    def _network(self):
        name = last(self.opts.get("network") or "default")
        try:
            found = self.api.get(self.api.path("global", "networks", name), context={"resource": "network %s" % name})
        except NotFoundError:
            raise ConfigError("network %s does not exist in project %s" % (name, self.project),
                              hint="Create it, or set network to an existing VPC network (default: 'default')")
        return relative(found.get("selfLink")) or self.api.path("global", "networks", name)

    def _subnetworks(self, regions):
        if not self.opts.get("subnetwork"):
            return {}
        name = last(self.opts["subnetwork"])
        out = {}
        for region in regions:
            try:
                found = self.api.get(self.api.path("regions", region, "subnetworks", name),
                                     context={"resource": "subnetwork %s in %s" % (name, region)})
            except NotFoundError:
                raise ConfigError("subnetwork %s does not exist in region %s" % (name, region),
                                  hint="Create it in every region of the placements, or unset subnetwork")
            out[region] = relative(found.get("selfLink"))
        return out

    # -- nodes -----------------------------------------------------------------
    def _instances(self, cluster, managed_only=True):
        """The cluster's instances: carrying the cluster label and (unless ``managed_only=False``) the managed-by
        label; the second is checked here, the filter names the first."""
        found = self.api.aggregated("instances", params={"filter": instance_filter(cluster)})
        return [i for i in found if is_managed(i)] if managed_only else found

    def owner_value(self, owner):
        return owner_label(owner)

    def kept_resources(self, cluster):
        return ["instance/%s (carries %s=%s but not %s)" % (i["name"], CLUSTER_TAG, cluster, MANAGED_TAG)
                for i in self._instances(cluster, managed_only=False) if not is_managed(i)]

    def list_nodes(self, cluster):
        return [node_from_instance(inst, cluster) for inst in self._instances(cluster)]

    # -- the failover's steps (create_nodes is the base class's) --------------------------------------------
    placement_kinds = "zones"
    report_skipped = True

    def _before_launch(self, spec, ranks, existing, prepared, timeout):
        return {"deadline": self.clock() + timeout}

    def _launch_in(self, spec, ranks, trial, prepared, minimum, state):
        zone, deadline = trial["zone"], state["deadline"]
        policy = self._ensure_policy(spec.cluster, zone_region(zone), deadline) if prepared["compact"] else None
        reservation = prepared["reservation"]["id"] if prepared.get("reservation") and trial.get("reservation") else None
        # spot as the provider's option says at launch (a launch of the spot fallback's on-demand ranks turns it off)
        facts = dict(prepared.facts, spot=bool(self.opts.get("spot")))
        body = bulk_insert_body(spec, ranks, zone, facts, minimum, policy, reservation=reservation)
        ctx = {"machine_type": prepared["machine_type"], "zone": zone, "region": zone_region(zone),
               "count": len(ranks), "what": "bulkInsert of %d x %s in %s" % (len(ranks), prepared["machine_type"], zone)}
        instances = self._bulk_insert(spec.cluster, zone, ranks, body, ctx, deadline)
        nodes = self._label_ranks(spec.cluster, instances, deadline)
        return nodes, {"zone": zone, "machine_type": prepared["machine_type"], "count": len(nodes),
                       "placement_policy": policy and last(policy), "reservation": reservation}

    def _capacity_what(self, spec, prepared):
        return prepared["machine_type"]

    def _bulk_insert(self, cluster, zone, ranks, body, ctx, deadline):
        """bulkInsert (idempotent by requestId) and await it; the cluster's instances it made, by name."""
        names = set(body["perInstanceProperties"])
        for generation in range(MAX_REQUEST_GENERATIONS):
            rid = request_id(cluster, zone, "bulkInsert", body, generation)
            op = self.api.call("POST", self._zone_path(zone, "instances", "bulkInsert"), body=body,
                               params={"requestId": rid}, context=ctx)
            self.api.wait(op, deadline, ctx)
            made = [i for i in self._instances(cluster) if i["name"] in names]
            if made:
                return made
            # the requestId's operation ended DONE long ago and its instances are gone since (the cluster was torn
            # down and is made again within the hour the API remembers requestIds): the next generation
            self.log("gcp: requestId generation %d belongs to instances deleted since" % generation)
        raise ConfigError("could not find a fresh requestId after %d generations" % MAX_REQUEST_GENERATIONS)

    def _label_ranks(self, cluster, instances, deadline):
        """The rank label on each new node (bulkInsert labels all alike); their operations awaited together."""
        ops = []
        for inst in instances:
            rank = node_from_instance(inst, cluster).rank
            labels = dict(inst.get("labels") or {})
            if labels.get(RANK_TAG) == str(rank):
                continue
            labels[RANK_TAG] = str(rank)
            body = {"labels": labels, "labelFingerprint": inst.get("labelFingerprint")}
            zone = last(inst["zone"])
            ops.append(self.api.call("POST", self._zone_path(zone, "instances", inst["name"], "setLabels"), body=body,
                                     params={"requestId": request_id(cluster, zone, "setLabels", [inst["id"], rank])},
                                     context={"what": "setLabels of %s" % inst["name"]}))
            inst["labels"] = labels
        self.api.wait_all(ops, deadline)
        return [node_from_instance(inst, cluster) for inst in instances]

    def _ensure_policy(self, cluster, region, deadline):
        name = policy_name(cluster)
        path = self.api.path("regions", region, "resourcePolicies")
        body = compact_policy_body(cluster, region)
        # no requestId: the name makes this idempotent (409), and a requestId would outlive a policy deleted since
        try:
            op = self.api.call("POST", path, body=body,
                               context={"what": "compact placement policy %s in %s" % (name, region)})
            self.api.wait(op, deadline, {"what": "compact placement policy %s" % name})
        except ConfigError as exc:
            if exc.code != "alreadyExists":
                raise
        # InstanceProperties.resourcePolicies takes names, not URLs (the discovery document)
        return name

    def start_nodes(self, cluster, nodes):
        deadline = self.clock() + OPERATION_TIMEOUT
        ops = [self.api.call("POST", self._zone_path(n.zone, "instances", n.name, "start"),
                             context={"what": "start of %s" % n.name}) for n in nodes]
        self.api.wait_all(ops, deadline)

    def delete_nodes(self, cluster, nodes, wait=True, timeout=600):
        deadline = self.clock() + timeout
        ops = []
        for node in nodes:
            try:
                ops.append(self.api.call("DELETE", self._zone_path(node.zone, "instances", node.name),
                                         params={"requestId": request_id(cluster, node.zone, "delete", node.id)},
                                         context={"what": "delete of %s" % node.name}))
            except NotFoundError:
                continue
        if wait:
            try:
                self.api.wait_all(ops, deadline)
            except NotFoundError:
                pass

    def wait_ready(self, cluster, nodes, timeout):
        def pending_state(name, rank, inst):
            if inst is None:
                raise CloudError("node %s disappeared while starting" % name,
                                 hint="A spot VM may have been preempted, or it was deleted by hand")
            if inst.get("status") in ("STOPPING", "TERMINATED", "SUSPENDED", "STOPPED"):
                why = inst.get("statusMessage") or inst["status"]
                raise CloudError("node %s stopped while starting (%s)" % (name, why),
                                 hint="A spot VM may have been preempted, or the image failed to boot")
            return None if inst.get("status") == "RUNNING" else inst.get("status")

        return self._wait_running(
            cluster, nodes, timeout, key=lambda n: n.name,
            instances=lambda: dict((i["name"], i) for i in self._instances(cluster)),
            pending_state=pending_state, to_node=lambda name, rank, inst: node_from_instance(inst, cluster))

    # -- what else the cluster owns -------------------------------------------
    def _policies(self, cluster):
        name = policy_name(cluster)
        return [p for p in self.api.aggregated("resourcePolicies", params={"filter": "name = %s" % name})
                if p.get("name") == name and (p.get("description") or "").startswith(MARKER % cluster + ":")]

    def cluster_resources(self, cluster):
        out = ["resource-policy/%s (%s)" % (p["name"], last(p.get("region"))) for p in self._policies(cluster)]
        out += ["firewall/%s" % fw["name"] for fw in self._firewalls(cluster)]
        return out

    def delete_cluster_resources(self, cluster, timeout=600):
        deadline = self.clock() + timeout
        live = self._instances(cluster)
        if live:
            raise ConfigError("cluster %s still has instances %s" % (cluster, ", ".join(sorted(i["name"] for i in live))),
                              hint="Remove the nodes first (instance state=absent)")
        deleted = []
        for policy in self._policies(cluster):
            self._delete_policy(cluster, policy, deadline)
            deleted.append("resource-policy/%s (%s)" % (policy["name"], last(policy.get("region"))))
        deleted += self._delete_firewall(cluster, False, max(deadline, self.clock() + 1))["deleted"]
        return deleted

    def _delete_policy(self, cluster, policy, deadline):
        region = last(policy.get("region"))
        path = self.api.path("regions", region, "resourcePolicies", policy["name"])
        blocked = {}

        def deleted():
            try:
                op = self.api.call("DELETE", path, context={"what": "delete of resource policy %s" % policy["name"]})
                self.api.wait(op, deadline)
            except NotFoundError:
                return True
            except ConfigError as exc:
                # a policy in use by instances being deleted: free once their deletions are DONE
                if "in use" in exc.message or "resourceInUseByAnotherResource" in (exc.code or ""):
                    blocked["why"] = exc.message
                    return False
                raise
            return True
        deleted.pending = lambda: "resource policy %s: %s" % (policy["name"], blocked.get("why"))
        retry.wait_until(deleted, max(1, deadline - self.clock()), interval=1.0,
                         what="resource policy %s to be deletable" % policy["name"], sleep=self.sleep)

    def describe(self, nodes=None, prepared=None, launch=None):
        info = {"cloud": self.name}
        if self._api is not None:
            info["project"] = self._api.project
        if self.opts.get("region"):
            info["region"] = self.opts["region"]
        info.update(getattr(launch, "info", None) or {})
        if nodes and "landed" not in info:
            info["zones"] = sorted(set(n.zone for n in nodes if n.zone))
        if prepared:
            info["image"] = prepared["image"]
            info["machine_type"] = prepared["machine_type"]
            info["gpus_per_node"] = prepared["gpus"]
            info["network"] = last(prepared["network"])
        if self._api is not None:
            info["api_calls"] = self._api.calls
        return info
