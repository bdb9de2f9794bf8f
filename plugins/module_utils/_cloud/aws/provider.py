# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``aws`` cloud: a GPU cluster on EC2 (boto3).

The whole cluster is one ``RunInstances`` call (MinCount = MaxCount unless ``min_count``), tagged at
launch, with a ClientToken derived from the cluster id and the request, so a retry or a re-run after
the controller died gets the same reservation back instead of a second set of nodes. A node's rank is
fixed at launch: the reservation carries the ranks it was asked for (``aiinfra-gpu-ranks``) and each
instance its ``AmiLaunchIndex``; a per-instance rank tag is added afterwards for people and consoles.

Everything else the cluster owns (security group, placement group, imported key pair) carries the
cluster tag and the ``managed-by`` tag, which is how teardown finds it.

Errors are classified once, in :func:`classify`; retries go through ``retry.call`` only (botocore's
own retries are switched off, so one logical call is never retried twice over).
"""

from __future__ import annotations

import os
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.options import CLOUD
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import retry
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.client import RetryingEc2
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.errors import CREDENTIALS_HINT, classify
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.firewall import (
    SecurityGroupFirewall)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.shapes import (
    AMI_ID_RE, LIVE_STATES, MAX_TOKEN_GENERATIONS, RANKS_TAG, REGION_RE, RESERVATION_GROUP_RE, RESERVATION_ID_RE,
    ROOT_VOLUME_TYPES, SSH_USER_TAG,
    _chunks, client_token, cloud_config, efa_layout, format_ranks, group_name, image_root_size, key_pair_name,
    newest_image, node_from_instance, plan_placements, tag_list)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (
    CLUSTER_TAG, MANAGED_TAG, MANAGED_VALUE, RANK_TAG, Prepared, Provider, fit_reservation, node_name)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CloudError, ConfigError, NotFoundError)

try:
    import boto3
    from botocore.config import Config
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()


class AwsProvider(SecurityGroupFirewall, Provider):
    """EC2. Options: connection (region, endpoint_url, credentials) and the instance module's AWS options."""

    name = "aws"
    cloud = CLOUD

    def __init__(self, options=None, log=None, client=None, policy=None, sleep=time.sleep):
        super(AwsProvider, self).__init__(options, log)
        if client is None and not HAS_BOTO3:
            raise ConfigError(missing_required_lib("boto3"),
                              hint="Install boto3 into the Python that runs the module (pip install boto3); "
                                   "import error: %s" % (BOTO3_IMPORT_ERROR or "").strip().splitlines()[-1])
        self.api = RetryingEc2(self._make_client,
                               policy or retry.RetryPolicy(attempts=8, base=0.25, cap=8.0, deadline=180, sleep=sleep),
                               log=self.log, region=self.opts.get("region") or "", client=client)
        self.sleep = sleep

    # -- connection ------------------------------------------------------------
    @property
    def ec2(self):
        return self.api.client

    @property
    def calls(self):
        return self.api.calls

    def _make_client(self):
        opts = self.opts
        if bool(opts.get("access_key")) != bool(opts.get("secret_key")):
            raise ConfigError("access_key and secret_key must be given together", hint=CREDENTIALS_HINT)
        kwargs = {}
        if opts.get("profile"):
            kwargs["profile_name"] = opts["profile"]
        if opts.get("access_key"):
            kwargs.update(aws_access_key_id=opts["access_key"], aws_secret_access_key=opts["secret_key"],
                          aws_session_token=opts.get("session_token") or None)
        try:
            session = boto3.session.Session(**kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            raise classify(exc) or ConfigError("could not start an AWS session: %s" % exc)
        # boto3 reads AWS_DEFAULT_REGION and the profile; the other SDKs' AWS_REGION is honoured too
        region = opts.get("region") or os.environ.get("AWS_REGION") or session.region_name
        if not region:
            raise ConfigError("no AWS region given", hint="Set region (e.g. us-east-1), or AWS_REGION in the environment")
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=120,
                        user_agent_extra="aiinfra.gpu_cluster")
        return session.client("ec2", region_name=region, endpoint_url=opts.get("endpoint_url") or None, config=config)

    @property
    def region(self):
        return self.api.region

    def _call(self, op, context=None, **params):
        return self.api.call(op, context=context, **params)

    def _pages(self, op, key, context=None, **params):
        return self.api.pages(op, key, context=context, **params)

    @staticmethod
    def _owned_filters(cluster):
        return [{"Name": "tag:%s" % CLUSTER_TAG, "Values": [cluster]},
                {"Name": "tag:%s" % MANAGED_TAG, "Values": [MANAGED_VALUE]}]

    # -- checks ----------------------------------------------------------------
    def preflight(self, spec):
        """Offline checks of the options (no API call): shapes, required values, tag limits."""
        opts = self.opts
        if opts.get("region") and not REGION_RE.fullmatch(opts["region"]):
            raise ConfigError("region %r is not an AWS region name" % opts["region"], hint="e.g. us-east-1")
        if not spec.instance_type and not any((p or {}).get("instance_type") for p in opts.get("placements") or []):
            raise ConfigError("instance_type is required on cloud aws", hint="e.g. instance_type: p4d.24xlarge")
        if not spec.image:
            raise ConfigError("image is required on cloud aws",
                              hint="An AMI id (ami-...) or a name pattern whose newest match is used, e.g. "
                                   "'Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *'")
        if spec.image.startswith("ami-") and not AMI_ID_RE.fullmatch(spec.image):
            raise ConfigError("image %r is not a valid AMI id" % spec.image, hint="AMI ids look like ami-0abcdef1234567890")
        for entry in opts.get("placements") or []:
            if not any((entry or {}).get(k) for k in ("subnet_id", "availability_zone", "instance_type")):
                raise ConfigError("a placement needs subnet_id, availability_zone or instance_type",
                                  hint="e.g. placements: [{availability_zone: us-east-1a}, {subnet_id: subnet-0abc}]")
        self.check_min_count()
        self._check_reservation()
        size = opts.get("root_volume_size")
        if size is not None and not 8 <= size <= 65536:
            raise ConfigError("root_volume_size must be 8..65536 GiB, got %d" % size)
        if opts.get("root_volume_type") and opts["root_volume_type"] not in ROOT_VOLUME_TYPES:
            raise ConfigError("root_volume_type must be one of %s" % ", ".join(ROOT_VOLUME_TYPES))
        if len(spec.labels) > 40:
            raise ConfigError("too many labels (%d): EC2 allows 50 tags, the collection uses up to 8" % len(spec.labels))
        for key, value in spec.labels.items():
            if len(key) > 128 or len(str(value)) > 256 or key.lower().startswith("aws:"):
                raise ConfigError("label %r is not a valid EC2 tag" % key,
                                  hint="Keys up to 128 characters not starting with 'aws:', values up to 256")

    def _check_reservation(self):
        res = dict((k, v) for k, v in (self.opts.get("reservation") or {}).items() if v not in (None, ""))
        if not res:
            return
        if bool(res.get("id")) == bool(res.get("group_arn")):
            raise ConfigError("reservation needs one of id and group_arn",
                              hint="e.g. reservation: {id: cr-0123456789abcdef0}")
        if res.get("id") and not RESERVATION_ID_RE.fullmatch(res["id"]):
            raise ConfigError("reservation id %r is not a capacity reservation id" % res["id"],
                              hint="Capacity reservation and Capacity Block ids look like cr-0123456789abcdef0")
        if res.get("group_arn") and not RESERVATION_GROUP_RE.fullmatch(res["group_arn"]):
            raise ConfigError("reservation group_arn %r is not a resource group ARN" % res["group_arn"],
                              hint="e.g. arn:aws:resource-groups:us-east-1:123456789012:group/my-reservations")
        if res.get("capacity_block") and not res.get("id"):
            raise ConfigError("a Capacity Block is named by its reservation id (reservation.id), not a group")
        if self.opts.get("spot"):
            raise ConfigError("spot instances cannot launch into a capacity reservation",
                              hint="Set either spot or reservation")

    def _reservation(self, ranks, existing, tries):
        """Look the reservation up and settle which tries launch into it (:func:`fit_reservation`)."""
        res = dict((k, v) for k, v in (self.opts.get("reservation") or {}).items() if v not in (None, ""))
        if not res:
            return tries, [], None
        if res.get("group_arn"):
            # the members of a resource group are the resource-groups service's (not EC2's) to list: no look-up
            return [dict(t, reservation=True) for t in tries], [], {"group_arn": res["group_arn"]}
        try:
            found = self._call("describe_capacity_reservations", context={"resource": "capacity reservation %s"
                                                                                      % res["id"]},
                               CapacityReservationIds=[res["id"]]).get("CapacityReservations") or []
        except CloudError as exc:
            if exc.kind in ("not_found", "config"):
                raise ConfigError("capacity reservation %s does not exist in %s" % (res["id"], self.region),
                                  hint="aws ec2 describe-capacity-reservations --region %s lists yours; EC2 said: %s"
                                       % (self.region, getattr(exc, "detail", exc.message)), code=exc.code)
            raise
        if not found:
            raise ConfigError("capacity reservation %s does not exist in %s" % (res["id"], self.region))
        cr = found[0]
        block = cr.get("ReservationType") == "capacity-block"
        if res.get("capacity_block") and not block:
            raise ConfigError("capacity reservation %s is not a Capacity Block (its type is %s)"
                              % (res["id"], cr.get("ReservationType") or "default"),
                              hint="Leave reservation.capacity_block unset for an On-Demand Capacity Reservation")
        if cr.get("State") != "active":
            raise ConfigError("capacity reservation %s is %s, not active" % (res["id"], cr.get("State")),
                              hint="A Capacity Block can be launched into from its start date (%s)"
                                   % cr.get("StartDate", "see the reservation") if block else
                                   "Launch into an active reservation")
        itype, zone = cr.get("InstanceType"), cr.get("AvailabilityZone")

        def fits(trial):
            if trial["instance_type"] != itype:
                return "%s %s: the reservation is for %s" % (trial["availability_zone"], trial["instance_type"], itype)
            if trial["availability_zone"] != zone:
                return "%s: the reservation is in %s" % (trial["availability_zone"], zone)
            return None
        tries, skipped = fit_reservation(tries, res["id"], fits, int(cr.get("AvailableInstanceCount") or 0),
                                         self.minimum_count(ranks, existing),
                                         "%s in %s" % (itype, zone))
        return tries, skipped, {"id": res["id"], "capacity_block": block, "instance_type": itype, "zone": zone,
                                "free": int(cr.get("AvailableInstanceCount") or 0)}

    def preflight_create(self, spec, ranks, existing=(), check_mode=False):
        """Everything a launch needs, looked up read-only: nothing is created here. Returned as ``prepared``."""
        return self._resolve(spec, ranks, existing, check_mode)

    def _resolve(self, spec, ranks, existing=(), check_mode=False):
        opts = self.opts
        placements = [dict((k, v) for k, v in (p or {}).items() if v) for p in opts.get("placements") or []]
        types = []
        for entry in placements or [{}]:
            itype = entry.get("instance_type") or spec.instance_type
            if itype not in types:
                types.append(itype)
        infos = self._instance_types(types)
        image = self._image(spec.image, infos)

        # subnets: those named, and the default VPC's default subnets when an entry names none
        subnets = {}
        named = sorted(set(p["subnet_id"] for p in placements if p.get("subnet_id")))
        if named:
            for sub in self._pages("describe_subnets", "Subnets", context={"resource": "subnet %s" % ", ".join(named)},
                                   SubnetIds=named):
                subnets[sub["SubnetId"]] = {"availability_zone": sub["AvailabilityZone"], "vpc_id": sub["VpcId"]}
        defaults = {}
        if not placements or any(not p.get("subnet_id") for p in placements):
            for sub in self._pages("describe_subnets", "Subnets",
                                   Filters=[{"Name": "default-for-az", "Values": ["true"]}]):
                defaults[sub["AvailabilityZone"]] = {"subnet_id": sub["SubnetId"], "vpc_id": sub["VpcId"]}
        live = [n for n in existing or () if n.zone and n.rank not in set(ranks)]
        existing_zone = sorted(n.zone for n in live)[0] if live else None
        tries = plan_placements(placements, spec.instance_type, subnets, defaults, existing_zone)

        # where each type is offered: a try the region does not offer is skipped, not failed over
        zones = sorted(set(t["availability_zone"] for t in tries))
        offered = set()
        for item in self._pages("describe_instance_type_offerings", "InstanceTypeOfferings",
                                LocationType="availability-zone",
                                Filters=[{"Name": "instance-type", "Values": types},
                                         {"Name": "location", "Values": zones}]):
            offered.add((item["InstanceType"], item["Location"]))
        skipped = [dict(t, error="%s is not offered in %s" % (t["instance_type"], t["availability_zone"]))
                   for t in tries if (t["instance_type"], t["availability_zone"]) not in offered]
        tries = [t for t in tries if (t["instance_type"], t["availability_zone"]) in offered]
        if not tries:
            raise ConfigError("none of the placements offers the instance type: %s"
                              % "; ".join(s["error"] for s in skipped),
                              hint="Choose availability zones where the type is offered (aws ec2 "
                                   "describe-instance-type-offerings --location-type availability-zone)")

        tries, misfits, reservation = self._reservation(ranks, existing, tries)
        skipped += misfits

        groups = self._security_groups(spec.cluster, check_mode)
        vpcs = set(g["VpcId"] for g in groups)
        for trial in tries:
            if trial.get("vpc_id") and groups and trial["vpc_id"] not in vpcs:
                raise ConfigError("subnet %s is in %s but the cluster's security group is in %s"
                                  % (trial["subnet_id"], trial["vpc_id"], ", ".join(sorted(vpcs))),
                                  hint="Create the firewall in the subnets' VPC (firewall vpc_id) or pick subnets of "
                                       "the security group's VPC")

        key = self._key_pair(spec)
        efa = {}
        for itype in types:
            layout = efa_layout(infos[itype]) if opts.get("efa") is not False else []
            if len(layout) > 1 and opts.get("public_ip"):
                raise ConfigError("public_ip: true cannot be met by %s with EFA: EC2 gives instances with several "
                                  "network interfaces no public IPv4 address" % itype,
                                  hint="Reach the nodes from inside the VPC (public_ip: false, a bastion, VPN or SSM), "
                                       "or set efa: false")
            if opts.get("efa") and not layout:
                raise ConfigError("instance type %s has no EFA" % itype,
                                  hint="Set efa: false, or choose an EFA type (p4d, p5, g6e.xlarge+, trn1, ...)")
            efa[itype] = layout
        use_pg = opts.get("placement_group")
        supports_pg = all("cluster" in ((infos[t].get("PlacementGroupInfo") or {}).get("SupportedStrategies") or ["cluster"])
                          for t in types)
        if use_pg and not supports_pg:
            raise ConfigError("instance type(s) %s cannot join a cluster placement group" % ", ".join(types),
                              hint="Set placement_group: false")
        placement_group = None
        if use_pg is not False and supports_pg:
            placement_group = self._placement_group(spec.cluster)
        root_size = image_root_size(image)
        if opts.get("root_volume_size") and opts["root_volume_size"] < root_size:
            raise ConfigError("root_volume_size %d GiB is smaller than image %s (%d GiB)"
                              % (opts["root_volume_size"], image["ImageId"], root_size),
                              hint="Use at least %d, or leave root_volume_size unset" % root_size)
        return Prepared(tries=tries, skipped=skipped, facts={
            "root_size": max(root_size, 8), "infos": infos, "image": image, "groups": [g["GroupId"] for g in groups],
            "key": key, "efa": efa, "placement_group": placement_group, "reservation": reservation,
        })

    def _instance_types(self, types):
        try:
            found = self._pages("describe_instance_types", "InstanceTypes", InstanceTypes=types)
        except CloudError as exc:
            if exc.code in ("InvalidInstanceType", "InvalidParameterValue") or exc.kind == "not_found":
                raise ConfigError("instance type %s does not exist in %s" % (", ".join(types), self.region),
                                  hint="Check the spelling (e.g. p4d.24xlarge) and that the region has it; EC2 said: %s"
                                       % getattr(exc, "detail", exc.message), code=exc.code)
            raise
        infos = dict((t["InstanceType"], t) for t in found)
        missing = [t for t in types if t not in infos]
        if missing:
            raise ConfigError("instance type %s does not exist in %s" % (", ".join(missing), self.region),
                              hint="Check the spelling (e.g. p4d.24xlarge) and that the region has it")
        return infos

    def _image(self, image, infos):
        arches = None
        for info in infos.values():
            supported = set((info.get("ProcessorInfo") or {}).get("SupportedArchitectures") or [])
            if supported:
                arches = supported if arches is None else arches & supported
        if image.startswith("ami-"):
            try:
                images = self._call("describe_images", context={"resource": "AMI %s" % image},
                                    ImageIds=[image])["Images"]
            except CloudError as exc:
                if exc.kind in ("not_found", "config"):
                    raise ConfigError("AMI %s does not exist in %s" % (image, self.region),
                                      hint="AMI ids are per region; look it up in this region, or give a name pattern. "
                                           "EC2 said: %s" % getattr(exc, "detail", exc.message), code=exc.code)
                raise
            if not images:
                raise ConfigError("AMI %s does not exist in %s" % (image, self.region))
            chosen = images[0]
            if arches and chosen.get("Architecture") not in arches:
                raise ConfigError("AMI %s is %s but the instance type runs %s"
                                  % (image, chosen.get("Architecture"), ", ".join(sorted(arches))))
            return chosen
        owners = self.opts.get("image_owners") or ["self", "amazon"]
        images = self._pages("describe_images", "Images", Owners=owners,
                             Filters=[{"Name": "name", "Values": [image]}, {"Name": "state", "Values": ["available"]}])
        chosen = newest_image(images, arches)
        if chosen is None:
            raise ConfigError("no AMI named like %r (owners %s, architecture %s) in %s"
                              % (image, ", ".join(owners), "/".join(sorted(arches or [])) or "any", self.region),
                              hint="Check the pattern ('*' matches anything) and image_owners")
        return chosen

    def _security_groups(self, cluster, check_mode=False):
        groups = self._pages("describe_security_groups", "SecurityGroups", Filters=self._owned_filters(cluster))
        extra = self.opts.get("security_groups") or []
        ids = [g for g in extra if g.startswith("sg-")]
        names = [g for g in extra if not g.startswith("sg-")]
        if ids:
            groups += self._pages("describe_security_groups", "SecurityGroups",
                                  context={"resource": "security group %s" % ", ".join(ids)}, GroupIds=ids)
        if names:
            found = self._pages("describe_security_groups", "SecurityGroups",
                                Filters=[{"Name": "group-name", "Values": names}])
            missing = sorted(set(names) - set(g["GroupName"] for g in found))
            if missing:
                raise ConfigError("security group(s) %s do not exist in %s" % (", ".join(missing), self.region))
            groups += found
        if not groups and not check_mode:
            raise ConfigError("cluster %s has no security group" % cluster,
                              hint="Run aiinfra.gpu_cluster.firewall for the cluster first (SSH from admin_cidrs, all "
                                   "traffic between the nodes), or list security_groups")
        unique = dict((g["GroupId"], g) for g in groups)
        return [unique[k] for k in sorted(unique)]

    def _key_pair(self, spec):
        """``{"name", "import"}``: an existing key pair (key_name) or the one imported from ssh_public_key."""
        if self.opts.get("key_name"):
            name = self.opts["key_name"]
            self._call("describe_key_pairs", context={"resource": "key pair %s" % name}, KeyNames=[name])
            return {"name": name, "import": None}
        if not spec.ssh_public_key:
            return {"name": None, "import": None}
        name = key_pair_name(spec.cluster, spec.ssh_public_key)
        found = self._call("describe_key_pairs", Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"]
        return {"name": name, "import": None if found else spec.ssh_public_key}

    def _placement_group(self, cluster):
        name = group_name(cluster)
        found = self._call("describe_placement_groups",
                           Filters=[{"Name": "group-name", "Values": [name]}])["PlacementGroups"]
        for group in found:
            if group.get("Strategy") != "cluster":
                raise ConfigError("placement group %s exists with strategy %s" % (name, group.get("Strategy")),
                                  hint="Delete it or set placement_group: false")
        return {"name": name, "exists": bool(found)}

    # -- nodes -----------------------------------------------------------------
    def _instances(self, cluster, live_only=True, managed_only=True):
        """The cluster's instances: those carrying the cluster and the managed-by tags (only the cluster tag with
        ``managed_only=False``: what teardown leaves alone is found so)."""
        filters = self._owned_filters(cluster) if managed_only else [{"Name": "tag:%s" % CLUSTER_TAG, "Values": [cluster]}]
        if live_only:
            filters.append({"Name": "instance-state-name", "Values": list(LIVE_STATES)})
        reservations = self._pages("describe_instances", "Reservations", Filters=filters, MaxResults=1000)
        return [inst for res in reservations for inst in res.get("Instances") or []]

    def list_nodes(self, cluster):
        return [node_from_instance(inst, cluster) for inst in self._instances(cluster)]

    # -- the failover's steps (create_nodes is the base class's) --------------------------------------------
    placement_kinds = "subnets/AZs, alternative instance types"

    def _before_launch(self, spec, ranks, existing, prepared, timeout):
        key = prepared["key"]
        if key["import"]:
            self._import_key(spec, key)
        pg = prepared["placement_group"]
        if pg and not pg["exists"]:
            self._create_placement_group(spec, pg["name"])
        return {"timeout": timeout}

    def _launch_in(self, spec, ranks, trial, prepared, minimum, state):
        request = self._run_request(spec, ranks, trial, prepared, minimum)
        info = prepared["infos"][trial["instance_type"]]
        context = {"instance_type": trial["instance_type"], "count": len(ranks), "spot": bool(self.opts.get("spot")),
                   "vcpus": ((info.get("VCpuInfo") or {}).get("DefaultVCpus") or 0) * len(ranks),
                   "placement": "%s (%s)" % (trial["availability_zone"], trial["subnet_id"])}
        reservation = self._run_instances(spec.cluster, ranks, request, context)
        instances = sorted(reservation.get("Instances") or [], key=lambda i: i.get("AmiLaunchIndex", 0))
        nodes = [node_from_instance(inst, spec.cluster, rank=ranks[inst.get("AmiLaunchIndex", 0)])
                 for inst in instances]
        pg = prepared["placement_group"]
        try:
            self._tag_ranks(spec.cluster, nodes)
        except CloudError:
            self._terminate([n.id for n in nodes])
            raise
        return nodes, dict(trial, placement_group=pg["name"] if pg else None, count=len(nodes),
                           efa_interfaces=len(prepared["efa"][trial["instance_type"]]))

    def _capacity_what(self, spec, prepared):
        return "/".join(sorted(prepared["infos"]))

    def _describe_try(self, attempt):
        return "%s %s: %s" % (attempt["availability_zone"], attempt["instance_type"], attempt["error"])

    def _run_request(self, spec, ranks, trial, res, minimum):
        opts = self.opts
        itype = trial["instance_type"]
        instance_tags = spec.tags()
        instance_tags.update({RANKS_TAG: format_ranks(ranks), SSH_USER_TAG: spec.ssh_user, "Name": spec.cluster})
        tag_specs = [{"ResourceType": "instance", "Tags": tag_list(instance_tags)},
                     {"ResourceType": "volume", "Tags": tag_list(spec.tags())},
                     {"ResourceType": "network-interface", "Tags": tag_list(spec.tags())}]
        if opts.get("spot"):
            tag_specs.append({"ResourceType": "spot-instances-request", "Tags": tag_list(spec.tags())})
        placement = {"AvailabilityZone": trial["availability_zone"]}
        if res["placement_group"]:
            placement["GroupName"] = res["placement_group"]["name"]
        request = {
            "ImageId": res["image"]["ImageId"],
            "InstanceType": itype,
            "MinCount": minimum,
            "MaxCount": len(ranks),
            "Placement": placement,
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
            "TagSpecifications": tag_specs,
            "UserData": cloud_config(spec.ssh_user, spec.ssh_public_key),
        }
        if res["key"]["name"]:
            request["KeyName"] = res["key"]["name"]
        layout = res["efa"][itype]
        if layout:
            request["NetworkInterfaces"] = [
                {"NetworkCardIndex": card, "DeviceIndex": device, "InterfaceType": kind,
                 "SubnetId": trial["subnet_id"], "Groups": list(res["groups"]), "DeleteOnTermination": True}
                for card, device, kind in layout]
        elif opts.get("public_ip") is not None:
            # public_ip set: one interface that says whether it gets a public IPv4 address (else the subnet decides)
            request["NetworkInterfaces"] = [{"DeviceIndex": 0, "SubnetId": trial["subnet_id"],
                                             "Groups": list(res["groups"]), "DeleteOnTermination": True,
                                             "AssociatePublicIpAddress": bool(opts["public_ip"])}]
        else:
            request["SubnetId"] = trial["subnet_id"]
            request["SecurityGroupIds"] = list(res["groups"])
        # the root volume always goes with the instance (some images default to keeping it: billable leftovers)
        ebs = {"VolumeType": opts.get("root_volume_type") or "gp3", "DeleteOnTermination": True,
               "VolumeSize": opts.get("root_volume_size") or res["root_size"]}
        request["BlockDeviceMappings"] = [{"DeviceName": res["image"].get("RootDeviceName") or "/dev/sda1", "Ebs": ebs}]
        if opts.get("spot"):
            request["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}
        if spec.ttl_minutes or spec.self_stop:
            # the node stops itself at its deadline or when idle (the lifetime timer): a shutdown from inside terminates
            request["InstanceInitiatedShutdownBehavior"] = "terminate"
        reservation = res.get("reservation")
        if reservation and trial.get("reservation"):
            if reservation.get("group_arn"):
                target = {"CapacityReservationResourceGroupArn": reservation["group_arn"]}
            else:
                target = {"CapacityReservationId": reservation["id"]}
            request["CapacityReservationSpecification"] = {"CapacityReservationTarget": target}
            if reservation.get("capacity_block"):
                request["InstanceMarketOptions"] = {"MarketType": "capacity-block"}
        return request

    def _run_instances(self, cluster, ranks, request, context):
        for generation in range(MAX_TOKEN_GENERATIONS):
            token = client_token(cluster, ranks, request, generation)
            try:
                return self._call("run_instances", context=context, ClientToken=token, **request)
            except ConfigError as exc:
                if exc.code != "IdempotentInstanceTerminated":
                    raise
                self.log("aws: ClientToken generation %d was used by a cluster since terminated" % generation)
        raise ConfigError("could not find a fresh ClientToken after %d generations" % MAX_TOKEN_GENERATIONS)

    def _tag_ranks(self, cluster, nodes):
        for node in nodes:
            self._call("create_tags", context={"just_created": True}, Resources=[node.id],
                       Tags=tag_list({RANK_TAG: str(node.rank), "Name": node_name(cluster, node.rank)}))

    def _import_key(self, spec, key):
        try:
            self._call("import_key_pair", KeyName=key["name"], PublicKeyMaterial=key["import"].encode("utf-8"),
                       TagSpecifications=[{"ResourceType": "key-pair", "Tags": tag_list(spec.tags())}])
        except ConfigError as exc:
            if exc.code != "InvalidKeyPair.Duplicate":
                raise

    def _create_placement_group(self, spec, name):
        try:
            self._call("create_placement_group", GroupName=name, Strategy="cluster",
                       TagSpecifications=[{"ResourceType": "placement-group", "Tags": tag_list(spec.tags())}])
        except ConfigError as exc:
            if exc.code != "InvalidPlacementGroup.Duplicate":
                raise

    def start_nodes(self, cluster, nodes):
        for chunk in _chunks([n.id for n in nodes], 500):
            self._call("start_instances", InstanceIds=chunk)

    def _terminate(self, ids):
        for chunk in _chunks(list(ids), 500):
            self._call("terminate_instances", InstanceIds=chunk)

    def delete_nodes(self, cluster, nodes, wait=True, timeout=600):
        ids = [n.id for n in nodes]
        if not ids:
            return
        self._terminate(ids)
        if wait:
            self._wait_gone(cluster, ids, timeout)

    def _wait_gone(self, cluster, ids, timeout):
        pending = {}

        def gone():
            states = dict((i["InstanceId"], i["State"]["Name"]) for i in self._instances(cluster, live_only=False))
            pending.clear()
            pending.update((i, states[i]) for i in ids if states.get(i, "terminated") != "terminated")
            return not pending
        gone.pending = lambda: ", ".join("%s (%s)" % kv for kv in sorted(pending.items()))
        retry.wait_until(gone, timeout, interval=2.0, what="%d instance(s) of %s to terminate" % (len(ids), cluster),
                         sleep=self.sleep)

    def wait_ready(self, cluster, nodes, timeout):
        def pending_state(iid, rank, inst):
            state = inst["State"]["Name"] if inst else "not visible yet"
            if state in ("shutting-down", "terminated"):
                reason = (inst.get("StateReason") or {})
                raise CloudError("node %s (%s) was terminated while starting: %s"
                                 % (node_name(cluster, rank), iid, reason.get("Message") or state),
                                 hint="Spot capacity may have been reclaimed, or the image failed to boot",
                                 code=reason.get("Code"))
            return None if state == "running" else state

        return self._wait_running(
            cluster, nodes, timeout, key=lambda n: n.id,
            instances=lambda: dict((i["InstanceId"], i) for i in self._instances(cluster, live_only=False)),
            pending_state=pending_state, to_node=lambda iid, rank, inst: node_from_instance(inst, cluster, rank=rank),
            interval=2.0)

    # -- what else the cluster owns -------------------------------------------
    def _owned(self, cluster):
        """``[(kind, id, label)]`` of everything non-instance carrying the cluster and managed-by tags."""
        tags = self._owned_filters(cluster)
        out = []
        for group in self._pages("describe_security_groups", "SecurityGroups", Filters=tags):
            out.append(("security-group", group["GroupId"], "%s (%s)" % (group["GroupName"], group["GroupId"])))
        for group in self._call("describe_placement_groups", Filters=tags).get("PlacementGroups") or []:
            out.append(("placement-group", group["GroupName"], group["GroupName"]))
        for key in self._call("describe_key_pairs", Filters=tags).get("KeyPairs") or []:
            out.append(("key-pair", key["KeyName"], key["KeyName"]))
        available = [{"Name": "status", "Values": ["available"]}]
        for vol in self._pages("describe_volumes", "Volumes", Filters=tags + available):
            out.append(("volume", vol["VolumeId"], vol["VolumeId"]))
        for eni in self._pages("describe_network_interfaces", "NetworkInterfaces", Filters=tags + available):
            out.append(("network-interface", eni["NetworkInterfaceId"], eni["NetworkInterfaceId"]))
        return out

    def cluster_resources(self, cluster):
        return ["%s/%s" % (kind, label) for kind, _id, label in self._owned(cluster)]

    def kept_resources(self, cluster):
        """Instances and security groups carrying the cluster tag without the managed-by tag (not ours)."""
        def foreign(tags):
            return dict((t["Key"], t["Value"]) for t in tags or []).get(MANAGED_TAG) != MANAGED_VALUE
        cluster_tag = [{"Name": "tag:%s" % CLUSTER_TAG, "Values": [cluster]}]
        kept = ["instance/%s (carries %s=%s but not %s)" % (i["InstanceId"], CLUSTER_TAG, cluster, MANAGED_TAG)
                for i in self._instances(cluster, managed_only=False) if foreign(i.get("Tags"))]
        kept += ["security-group/%s (carries %s=%s but not %s)" % (g["GroupId"], CLUSTER_TAG, cluster, MANAGED_TAG)
                 for g in self._pages("describe_security_groups", "SecurityGroups", Filters=cluster_tag)
                 if foreign(g.get("Tags"))]
        return kept

    def delete_cluster_resources(self, cluster, timeout=600):
        leftovers = [i for i in self._instances(cluster, live_only=False) if i["State"]["Name"] != "terminated"]
        alive = [i["InstanceId"] for i in leftovers if i["State"]["Name"] != "shutting-down"]
        if alive:
            raise ConfigError("cluster %s still has instances %s" % (cluster, ", ".join(sorted(alive))),
                              hint="Remove the nodes first (instance state=absent)")
        if leftovers:
            self._wait_gone(cluster, [i["InstanceId"] for i in leftovers], timeout)
        deleted = []
        # placement groups, key pairs and leftover volumes/ENIs first; the security group last (ENIs use it)
        order = {"placement-group": 0, "key-pair": 1, "volume": 2, "network-interface": 3, "security-group": 4}
        for kind, rid, label in sorted(self._owned(cluster), key=lambda r: order[r[0]]):
            self._delete_owned(kind, rid, timeout)
            deleted.append("%s/%s" % (kind, label))
        return deleted

    def _delete_owned(self, kind, rid, timeout):
        op, params = {
            "security-group": ("delete_security_group", {"GroupId": rid}),
            "placement-group": ("delete_placement_group", {"GroupName": rid}),
            "key-pair": ("delete_key_pair", {"KeyName": rid}),
            "volume": ("delete_volume", {"VolumeId": rid}),
            "network-interface": ("delete_network_interface", {"NetworkInterfaceId": rid}),
        }[kind]
        blocked = {}

        def deleted():
            try:
                self._call(op, **params)
            except NotFoundError:
                return True
            except ConfigError as exc:
                # EC2 lets go of a group a few seconds after its last instance terminated
                if exc.code in ("DependencyViolation", "InvalidPlacementGroup.InUse", "VolumeInUse",
                                "InvalidNetworkInterface.InUse"):
                    blocked["why"] = exc.message
                    return False
                raise
            return True
        deleted.pending = lambda: "%s %s: %s" % (kind, rid, blocked.get("why"))
        retry.wait_until(deleted, timeout, interval=2.0, what="%s %s to be deletable" % (kind, rid), sleep=self.sleep)

    # -- firewall (security group) -------------------------------------------

    def describe(self, nodes=None, prepared=None, launch=None):
        info = {"cloud": self.name, "region": self.region}
        info.update(getattr(launch, "info", None) or {})
        if nodes and "landed" not in info:
            info["zones"] = sorted(set(n.zone for n in nodes if n.zone))
        if prepared:
            info["image"] = prepared["image"].get("ImageId")
            info["image_name"] = prepared["image"].get("Name")
            info["security_groups"] = list(prepared["groups"])
            info["placement_group"] = (prepared["placement_group"] or {}).get("name")
            info["key_name"] = prepared["key"]["name"]
        info["api_calls"] = self.calls
        return info
