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

import hashlib
import json
import os
import re
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import retry
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (
    CLUSTER_TAG, MANAGED_TAG, MANAGED_VALUE, RANK_TAG, Node, Provider, RuleSpec, node_name)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CapacityError, CloudError, ConfigError, NotFoundError, QuotaError, TransientError)

try:
    import boto3
    from botocore.config import Config
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

RANKS_TAG = "aiinfra-gpu-ranks"
SSH_USER_TAG = "aiinfra-gpu-ssh-user"
UNRANKED = 1000000
LIVE_STATES = ("pending", "running", "stopping", "stopped")
STATE_MAP = {"pending": "pending", "running": "running", "stopping": "stopping", "stopped": "stopped",
             "shutting-down": "terminating", "terminated": "terminated"}
AMI_ID_RE = re.compile(r"^ami-[0-9a-f]{8,17}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
ROOT_VOLUME_TYPES = ("gp3", "gp2", "io1", "io2")
MAX_TOKEN_GENERATIONS = 16

# -- error classification ------------------------------------------------------
CAPACITY_CODES = frozenset((
    "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity", "InsufficientCapacityOnHost", "InsufficientFreeAddressesInSubnet",
    "InsufficientCapacityOnOutpost", "UnfulfillableCapacity", "SpotMaxPriceTooLow", "Unsupported",
))
QUOTA_CODES = frozenset((
    "VcpuLimitExceeded", "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded", "PlacementGroupLimitExceeded",
    "SecurityGroupLimitExceeded", "RulesPerSecurityGroupLimitExceeded", "ResourceLimitExceeded",
    "VolumeLimitExceeded", "AddressLimitExceeded", "NetworkInterfaceLimitExceeded", "MaxIOPSLimitExceeded",
    "InsufficientVolumeCapacity", "TagLimitExceeded",
))
TRANSIENT_CODES = frozenset((
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled", "EC2ThrottledException",
    "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout",
    "RequestTimeoutException", "PriorRequestNotComplete", "SlowDown",
))
AUTH_CODES = frozenset((
    "AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch", "OptInRequired",
    "Blocked", "PendingVerification", "ExpiredToken", "RequestExpired", "UnrecognizedClientException",
    "AccessDenied", "AccessDeniedException",
))
CONNECTION_ERRORS = frozenset((
    "HTTPClientError", "ConnectionError", "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
    "ConnectionClosedError", "ResponseParserError", "IncompleteReadError",
))
CREDENTIAL_ERRORS = frozenset((
    "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "InvalidConfigError",
    "ProfileNotFound", "ConfigNotFound", "UnauthorizedSSOTokenError", "TokenRetrievalError",
))
CREDENTIALS_HINT = ("Give credentials the usual way (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, "
                    "AWS_PROFILE and ~/.aws, or an instance role), or set access_key / secret_key / profile")

# (instance family letters) -> (on-demand quota, spot quota), each (name, Service Quotas code or None).
QUOTAS = (
    (("p",), ("Running On-Demand P instances", "L-417A185B"), ("All P Spot Instance Requests", "L-7212CCBC")),
    (("g", "gr", "vt"), ("Running On-Demand G and VT instances", "L-DB2E81BA"),
     ("All G and VT Spot Instance Requests", "L-3819A6DF")),
    (("dl",), ("Running On-Demand DL instances", None), ("All DL Spot Instance Requests", None)),
    (("trn",), ("Running On-Demand Trn instances", None), ("All Trn Spot Instance Requests", None)),
    (("inf",), ("Running On-Demand Inf instances", None), ("All Inf Spot Instance Requests", None)),
    (("x",), ("Running On-Demand X instances", None), ("All X Spot Instance Requests", None)),
    (("f",), ("Running On-Demand F instances", None), ("All F Spot Instance Requests", None)),
    (("hpc",), ("Running On-Demand HPC instances", None), ("All HPC Spot Instance Requests", None)),
)
STANDARD_QUOTAS = (("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "L-1216C47A"),
                   ("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", "L-34B43A08"))


def vcpu_quota(instance_type, spot=False):
    """The Service Quotas entry (name, code) that counts the vCPUs of ``instance_type``."""
    letters = re.match(r"[a-z]*", (instance_type or "").lower()).group(0)
    for families, on_demand, spot_quota in QUOTAS:
        if letters in families:
            return spot_quota if spot else on_demand
    return STANDARD_QUOTAS[1] if spot else STANDARD_QUOTAS[0]


def _quota_label(quota):
    name, code = quota
    return "'%s' (%s)" % (name, code) if code else "'%s'" % name


def error_parts(exc):
    """(code, message, HTTP status) of a botocore ClientError; (None, str(exc), None) for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        err = response["Error"]
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return err.get("Code") or None, err.get("Message") or str(exc), status
    return None, str(exc), None


def classify(exc, context=None):
    """See :func:`_classify`; the result also carries EC2's own words as ``detail``."""
    err = _classify(exc, context)
    if err is not None:
        err.detail = error_parts(exc)[1]
    return err


def _classify(exc, context=None):
    """Turn a boto3/botocore exception into a :class:`CloudError` (``None``: not an AWS error).

    ``context`` says what was being done: ``instance_type``, ``count``, ``vcpus``, ``spot`` (for a quota
    message that names the quota), ``region``, ``resource`` (what a *.NotFound refers to) and
    ``just_created`` (a NotFound right after a create is EC2's eventual consistency: retry).
    """
    ctx = context or {}
    names = set(cls.__name__ for cls in type(exc).__mro__)
    code, message, status = error_parts(exc)
    if code is None:
        if names & CREDENTIAL_ERRORS:
            return ConfigError("AWS credentials are missing or unusable: %s" % message, hint=CREDENTIALS_HINT,
                               code=type(exc).__name__)
        if "NoRegionError" in names:
            return ConfigError("no AWS region given", hint="Set region (e.g. us-east-1) or AWS_REGION")
        if "ParamValidationError" in names:
            return ConfigError("EC2 rejected the request's shape: %s" % message, code="ParamValidationError")
        if names & CONNECTION_ERRORS:
            return TransientError("could not talk to EC2: %s" % message,
                                  hint="Check region, endpoint_url and the network path to the EC2 endpoint",
                                  code=type(exc).__name__)
        if "BotoCoreError" in names:
            return CloudError("boto3 failed: %s" % message, code=type(exc).__name__)
        return None
    if code in CAPACITY_CODES:
        where = ctx.get("placement") or "this placement"
        return CapacityError("no EC2 capacity for %s in %s: %s" % (ctx.get("instance_type") or "the request", where,
                                                                   message), code=code)
    if code in QUOTA_CODES:
        return _quota_error(code, message, ctx)
    if code in TRANSIENT_CODES or (status and status >= 500):
        return TransientError("EC2 is busy or failing: %s" % message, code=code)
    if code in AUTH_CODES:
        return ConfigError("AWS refused the credentials or the permission: %s" % message, hint=CREDENTIALS_HINT,
                           code=code)
    if code.endswith((".NotFound", ".Unknown")) or code in ("InvalidAMIID.Unavailable",):
        if ctx.get("just_created"):
            return TransientError("EC2 does not show a just-created resource yet: %s" % message, code=code)
        return NotFoundError("%s does not exist: %s" % (ctx.get("resource") or "a resource the request names",
                                                        message), code=code)
    if code == "IdempotentParameterMismatch":
        return ConfigError("EC2 saw this ClientToken with other parameters: %s" % message, code=code,
                           hint="This is a bug in the token derivation; please report it")
    return ConfigError("EC2 rejected the request: %s" % message, code=code)


def _quota_error(code, message, ctx):
    instance_type = ctx.get("instance_type")
    if code in ("VcpuLimitExceeded", "MaxSpotInstanceCountExceeded", "InstanceLimitExceeded") and instance_type:
        quota = vcpu_quota(instance_type, ctx.get("spot"))
        need = ""
        if ctx.get("count"):
            need = " (%d x %s" % (ctx["count"], instance_type)
            need += " = %d vCPUs)" % ctx["vcpus"] if ctx.get("vcpus") else ")"
        return QuotaError(
            "EC2 quota %s in %s is too low for this cluster%s"
            % (_quota_label(quota), ctx.get("region") or "the region", need),
            hint="Request an increase of %s in Service Quotas (Amazon Elastic Compute Cloud), or lower count. "
                 "Another placement does not help: the quota is per region. EC2 said: %s"
                 % (_quota_label(quota), message),
            code=code)
    return QuotaError("EC2 account limit reached: %s" % message, code=code,
                      hint="Raise the '%s' limit in Service Quotas or remove unused resources" % code)


# -- pure helpers ---------------------------------------------------------------
def tag_list(tags):
    return [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())]


def tag_dict(tags):
    return dict((t["Key"], t["Value"]) for t in tags or [])


def format_ranks(ranks):
    """``[0, 1, 2, 3, 7]`` -> ``"0-3,7"`` (the ranks a reservation was launched for, in launch order)."""
    ranks = list(ranks)
    parts = []
    i = 0
    while i < len(ranks):
        j = i
        while j + 1 < len(ranks) and ranks[j + 1] == ranks[j] + 1:
            j += 1
        parts.append(str(ranks[i]) if i == j else "%d-%d" % (ranks[i], ranks[j]))
        i = j + 1
    return ",".join(parts)


def parse_ranks(text):
    """Inverse of :func:`format_ranks`; ``[]`` for anything malformed."""
    out = []
    try:
        for part in (text or "").split(","):
            if "-" in part:
                low, high = part.split("-", 1)
                out.extend(range(int(low), int(high) + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError:
        return []
    return out


def rank_of(tags, launch_index):
    """A node's rank: its rank tag, else the reservation's ranks at its launch index, else UNRANKED."""
    if tags.get(RANK_TAG, "").isdigit():
        return int(tags[RANK_TAG])
    ranks = parse_ranks(tags.get(RANKS_TAG))
    if 0 <= (launch_index or 0) < len(ranks):
        return ranks[launch_index or 0]
    return UNRANKED


def client_token(cluster, ranks, request, generation=0):
    """The RunInstances ClientToken: a hash of the cluster id, the ranks and the whole request.

    The same request for the same ranks always gets the same token (a retry, or a re-run after the
    controller was killed, gets EC2's original reservation back). ``generation`` moves on only when EC2
    says the token's instances were terminated since (a cluster torn down and made again).
    """
    doc = json.dumps({"cluster": cluster, "ranks": list(ranks), "request": request, "generation": generation},
                     sort_keys=True, default=str)
    return "aiinfra-%s" % hashlib.sha256(doc.encode("utf-8")).hexdigest()[:48]


def efa_layout(type_info):
    """EFA interfaces for ``type_info`` (a DescribeInstanceTypes entry), as ``(card, device, kind)``.

    ``efa`` (EFA + ENA, carries the node's IP) on network card 0, then ``efa-only`` on each further card
    as the type allows (plain ``efa`` where a card has no efa-only), up to MaximumEfaInterfaces.
    ``[]`` when the type has no EFA.
    """
    net = (type_info or {}).get("NetworkInfo") or {}
    if not net.get("EfaSupported"):
        return []
    limit = ((net.get("EfaInfo") or {}).get("MaximumEfaInterfaces")) or 1
    cards = sorted(net.get("NetworkCards") or [], key=lambda c: c.get("NetworkCardIndex", 0))
    layout = [(0, 0, "efa")]
    for card in cards:
        index = card.get("NetworkCardIndex", 0)
        if index == 0 or len(layout) >= limit:
            continue
        kinds = card.get("InterfaceTypes") or ["interface", "efa"]
        if "efa-only" in kinds:
            layout.append((index, 1, "efa-only"))
        elif "efa" in kinds:
            layout.append((index, 1, "efa"))
    return layout


def newest_image(images, architectures=None):
    """The newest available image (CreationDate, then name) of ``images``, of one of ``architectures``."""
    usable = [i for i in images if i.get("State", "available") == "available"
              and (not architectures or i.get("Architecture") in architectures)]
    if not usable:
        return None
    return max(usable, key=lambda i: (i.get("CreationDate") or "", i.get("Name") or "", i.get("ImageId")))


def image_root_size(image):
    """Size (GiB) of the root volume's snapshot of an image (DescribeImages entry); 0 when unknown."""
    root = image.get("RootDeviceName")
    for mapping in image.get("BlockDeviceMappings") or []:
        if mapping.get("DeviceName") == root and (mapping.get("Ebs") or {}).get("VolumeSize"):
            return int(mapping["Ebs"]["VolumeSize"])
    return 0


def plan_placements(placements, instance_type, subnets, default_subnets, existing_zone=None):
    """The ordered list of places to try, each ``{subnet_id, availability_zone, instance_type, vpc_id}``.

    ``placements`` is the user's list (``subnet_id``, ``availability_zone``, ``instance_type``, any may be
    unset); ``subnets`` maps subnet id -> ``{availability_zone, vpc_id}``; ``default_subnets`` maps AZ ->
    ``{subnet_id, vpc_id}`` (the default VPC's). An entry with neither subnet nor AZ stands for every AZ
    that has a default subnet, in AZ order; no entries at all means one such entry. When the cluster
    already has nodes (``existing_zone``) new ones go to the same AZ: one AZ per cluster (a cluster
    placement group is bound to one, and NCCL traffic must not cross AZs).
    """
    tries = []
    for entry in placements or [{}]:
        entry = entry or {}
        itype = entry.get("instance_type") or instance_type
        subnet_id, zone = entry.get("subnet_id"), entry.get("availability_zone")
        if subnet_id:
            info = subnets[subnet_id]
            if zone and zone != info["availability_zone"]:
                raise ConfigError("placement subnet %s is in %s, not %s" % (subnet_id, info["availability_zone"], zone),
                                  hint="Give subnet_id or availability_zone, or both that agree")
            expanded = [(subnet_id, info["availability_zone"], info.get("vpc_id"))]
        elif zone:
            if zone not in default_subnets:
                raise ConfigError("there is no default subnet in availability zone %s" % zone,
                                  hint="Give the placement's subnet_id (a subnet of your VPC in %s)" % zone)
            expanded = [(default_subnets[zone]["subnet_id"], zone, default_subnets[zone].get("vpc_id"))]
        else:
            if not default_subnets:
                raise ConfigError("no placements given and the region has no default VPC",
                                  hint="List placements with the subnet_id of each subnet to try")
            expanded = [(default_subnets[z]["subnet_id"], z, default_subnets[z].get("vpc_id"))
                        for z in sorted(default_subnets)]
        for sid, az, vpc in expanded:
            trial = {"subnet_id": sid, "availability_zone": az, "instance_type": itype, "vpc_id": vpc}
            if trial not in tries:
                tries.append(trial)
    if existing_zone:
        same = [t for t in tries if t["availability_zone"] == existing_zone]
        if not same:
            raise ConfigError("the cluster's nodes are in %s but no placement is" % existing_zone,
                              hint="Add a placement in %s: a cluster's nodes stay in one availability zone"
                                   % existing_zone)
        tries = same
    return tries


def cloud_config(ssh_user, ssh_public_key=""):
    """cloud-init user data: the image's default user becomes ``ssh_user`` (it receives the EC2 key pair)."""
    lines = [
        "#cloud-config",
        "system_info:",
        "  default_user:",
        "    name: %s" % json.dumps(ssh_user),
        "    lock_passwd: true",
        "    gecos: %s" % json.dumps("aiinfra.gpu_cluster admin"),
        "    sudo: [%s]" % json.dumps("ALL=(ALL) NOPASSWD:ALL"),
        "    shell: /bin/bash",
    ]
    if ssh_public_key:
        lines += ["ssh_authorized_keys:", "  - %s" % json.dumps(ssh_public_key)]
    return "\n".join(lines) + "\n"


def key_pair_name(cluster, public_key):
    """Name of the key pair imported for ``cluster``: a new key gets a new pair, never a silent swap."""
    blob = " ".join(public_key.split()[:2])
    return "aiinfra-%s-%s" % (cluster, hashlib.sha256(blob.encode("utf-8")).hexdigest()[:10])


def group_name(cluster):
    return "aiinfra-%s" % cluster


def node_from_instance(inst, cluster, rank=None):
    tags = tag_dict(inst.get("Tags"))
    if rank is None:
        rank = rank_of(tags, inst.get("AmiLaunchIndex", 0))
    state = (inst.get("State") or {}).get("Name", "unknown")
    private = inst.get("PrivateIpAddress") or ""
    public = inst.get("PublicIpAddress") or ""
    labels = dict((k, v) for k, v in tags.items() if not k.startswith(("aiinfra-", "aws:")) and k != "Name")
    return Node(
        rank=rank,
        name=node_name(cluster, rank) if rank != UNRANKED else tags.get("Name") or inst["InstanceId"],
        id=inst["InstanceId"],
        state=STATE_MAP.get(state, state),
        private_address=private,
        public_address=public,
        ssh_host=public or private,
        ssh_port=22,
        ssh_user=tags.get(SSH_USER_TAG, ""),
        instance_type=inst.get("InstanceType", ""),
        zone=(inst.get("Placement") or {}).get("AvailabilityZone", ""),
        labels=labels,
        launch_time=inst["LaunchTime"].isoformat() if hasattr(inst.get("LaunchTime"), "isoformat")
        else str(inst.get("LaunchTime") or ""),
        market="spot" if inst.get("InstanceLifecycle") == "spot" else "on_demand",
    )


_PROTOCOLS = {"-1": "all", "6": "tcp", "17": "udp", "1": "icmp"}


def rules_from_group(group):
    """The rules of an EC2 security group (DescribeSecurityGroups entry) as :class:`RuleSpec`."""
    gid = group.get("GroupId")
    out = []
    for direction, key in (("ingress", "IpPermissions"), ("egress", "IpPermissionsEgress")):
        for perm in group.get(key) or []:
            proto = str(perm.get("IpProtocol"))
            protocol = _PROTOCOLS.get(proto, proto)
            ports = (-1, -1) if protocol == "all" else (perm.get("FromPort", -1), perm.get("ToPort", -1))
            for item in perm.get("IpRanges") or []:
                out.append(RuleSpec(direction, protocol, ports[0], ports[1], item["CidrIp"], item.get("Description", "")))
            for item in perm.get("Ipv6Ranges") or []:
                out.append(RuleSpec(direction, protocol, ports[0], ports[1], item["CidrIpv6"],
                                    item.get("Description", "")))
            for item in perm.get("UserIdGroupPairs") or []:
                source = "self" if item.get("GroupId") == gid else "sg:%s" % item.get("GroupId")
                out.append(RuleSpec(direction, protocol, ports[0], ports[1], source, item.get("Description", "")))
            for item in perm.get("PrefixListIds") or []:
                out.append(RuleSpec(direction, protocol, ports[0], ports[1], "pl:%s" % item["PrefixListId"],
                                    item.get("Description", "")))
    return out


def permissions_from_rules(rules, group_id, descriptions=True):
    """EC2 IpPermissions for ``rules`` (all of one direction); ``self`` becomes ``group_id``."""
    out = []
    for rule in rules:
        perm = {"IpProtocol": "-1" if rule.protocol == "all" else rule.protocol}
        if rule.protocol != "all":
            perm["FromPort"] = rule.port_from
            perm["ToPort"] = rule.port_to
        extra = {"Description": rule.description} if descriptions and rule.description else {}
        source = rule.source
        if source == "self" or source.startswith("sg:"):
            perm["UserIdGroupPairs"] = [dict(GroupId=group_id if source == "self" else source[3:], **extra)]
        elif source.startswith("pl:"):
            perm["PrefixListIds"] = [dict(PrefixListId=source[3:], **extra)]
        elif ":" in source:
            perm["Ipv6Ranges"] = [dict(CidrIpv6=source, **extra)]
        else:
            perm["IpRanges"] = [dict(CidrIp=source, **extra)]
        out.append(perm)
    return out


def _chunks(items, size):
    for i in range(0, len(items), size):
        yield items[i:i + size]


# -- the provider ---------------------------------------------------------------
class AwsProvider(Provider):
    """EC2. Options: connection (region, endpoint_url, credentials) and the instance module's AWS options."""

    name = "aws"
    options = ("region", "endpoint_url", "access_key", "secret_key", "session_token", "profile", "image",
               "placements", "min_count", "key_name", "security_groups", "placement_group", "efa",
               "root_volume_size", "root_volume_type", "spot", "image_owners", "vpc_id")

    def __init__(self, options=None, log=None, client=None, policy=None, sleep=time.sleep):
        super(AwsProvider, self).__init__(options, log)
        if client is None and not HAS_BOTO3:
            raise ConfigError(missing_required_lib("boto3"),
                              hint="Install boto3 into the Python that runs the module (pip install boto3); "
                                   "import error: %s" % (BOTO3_IMPORT_ERROR or "").strip().splitlines()[-1])
        self._client = client
        self.policy = policy or retry.RetryPolicy(attempts=8, base=0.25, cap=8.0, deadline=180, sleep=sleep)
        self.sleep = sleep
        self.calls = 0
        self._nodes = None
        self._resolved = None
        self.landed = None
        self.failover = []

    # -- connection ------------------------------------------------------------
    @property
    def ec2(self):
        if self._client is None:
            self._client = self._make_client()
        return self._client

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
        if self._client is not None:
            return self._client.meta.region_name
        return self.opts.get("region") or ""

    def _call(self, op, context=None, **params):
        """One EC2 API call through the one retry helper (transient errors only)."""
        method = getattr(self.ec2, op)
        ctx = dict(context or {}, region=self.region)

        def once():
            self.calls += 1
            return method(**params)

        def on_retry(attempt, err, wait):
            self.log("aws %s: %s; retry %d in %.2fs" % (op, err, attempt, wait))

        return retry.call(once, classify=lambda exc: classify(exc, ctx), policy=self.policy, on_retry=on_retry)

    def _pages(self, op, key, context=None, **params):
        items = []
        while True:
            page = self._call(op, context=context, **params)
            items.extend(page.get(key) or [])
            token = page.get("NextToken")
            if not token:
                return items
            params["NextToken"] = token

    @staticmethod
    def _owned_filters(cluster):
        return [{"Name": "tag:%s" % CLUSTER_TAG, "Values": [cluster]},
                {"Name": "tag:%s" % MANAGED_TAG, "Values": [MANAGED_VALUE]}]

    # -- checks ----------------------------------------------------------------
    def preflight(self, spec):
        """Offline checks of the options (no API call): shapes, required values, tag limits."""
        opts = self.opts
        if opts.get("region") and not REGION_RE.match(opts["region"]):
            raise ConfigError("region %r is not an AWS region name" % opts["region"], hint="e.g. us-east-1")
        if not spec.instance_type and not any((p or {}).get("instance_type") for p in opts.get("placements") or []):
            raise ConfigError("instance_type is required on cloud aws", hint="e.g. instance_type: p4d.24xlarge")
        if not spec.image:
            raise ConfigError("image is required on cloud aws",
                              hint="An AMI id (ami-...) or a name pattern whose newest match is used, e.g. "
                                   "'Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *'")
        if spec.image.startswith("ami-") and not AMI_ID_RE.match(spec.image):
            raise ConfigError("image %r is not a valid AMI id" % spec.image, hint="AMI ids look like ami-0abcdef1234567890")
        for entry in opts.get("placements") or []:
            if not any((entry or {}).get(k) for k in ("subnet_id", "availability_zone", "instance_type")):
                raise ConfigError("a placement needs subnet_id, availability_zone or instance_type",
                                  hint="e.g. placements: [{availability_zone: us-east-1a}, {subnet_id: subnet-0abc}]")
        if opts.get("min_count") is not None and opts["min_count"] < 1:
            raise ConfigError("min_count must be at least 1, got %d" % opts["min_count"])
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

    def preflight_create(self, spec, ranks, check_mode=False):
        """Everything a launch needs, looked up read-only: nothing is created here."""
        self._resolved = self._resolve(spec, ranks, check_mode)

    def _resolve(self, spec, ranks, check_mode=False):
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
        live = [n for n in (self._nodes or []) if n.zone and n.rank not in set(ranks)]
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
        return {
            "root_size": max(root_size, 8),
            "infos": infos, "image": image, "tries": tries, "skipped": skipped, "groups": [g["GroupId"] for g in groups],
            "key": key, "efa": efa, "placement_group": placement_group,
        }

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
    def _instances(self, cluster, live_only=True):
        filters = [{"Name": "tag:%s" % CLUSTER_TAG, "Values": [cluster]}]
        if live_only:
            filters.append({"Name": "instance-state-name", "Values": list(LIVE_STATES)})
        reservations = self._pages("describe_instances", "Reservations", Filters=filters, MaxResults=1000)
        return [inst for res in reservations for inst in res.get("Instances") or []]

    def list_nodes(self, cluster):
        self._nodes = [node_from_instance(inst, cluster) for inst in self._instances(cluster)]
        return list(self._nodes)

    def create_nodes(self, spec, ranks):
        ranks = list(ranks)
        res = self._resolved or self._resolve(spec, ranks)
        key = res["key"]
        if key["import"]:
            self._import_key(spec, key)
        pg = res["placement_group"]
        if pg and not pg["exists"]:
            self._create_placement_group(spec, pg["name"])
        kept = set(n.rank for n in self._nodes or [] if n.rank != UNRANKED) - set(ranks)
        min_count = self.opts.get("min_count")
        minimum = len(ranks) if not min_count else min(len(ranks), max(1, min_count - len(kept)))
        attempts = []
        for trial in res["tries"]:
            request = self._run_request(spec, ranks, trial, res, minimum)
            info = res["infos"][trial["instance_type"]]
            context = {"instance_type": trial["instance_type"], "count": len(ranks), "spot": bool(self.opts.get("spot")),
                       "vcpus": ((info.get("VCpuInfo") or {}).get("DefaultVCpus") or 0) * len(ranks),
                       "placement": "%s (%s)" % (trial["availability_zone"], trial["subnet_id"])}
            try:
                reservation = self._run_instances(spec.cluster, ranks, request, context)
            except CapacityError as exc:
                attempts.append(dict(trial, error=str(exc)))
                self.log("aws: %s; trying the next placement" % exc)
                continue
            instances = sorted(reservation.get("Instances") or [], key=lambda i: i.get("AmiLaunchIndex", 0))
            nodes = [node_from_instance(inst, spec.cluster, rank=ranks[inst.get("AmiLaunchIndex", 0)])
                     for inst in instances]
            self.landed = dict(trial, placement_group=pg["name"] if pg else None, count=len(nodes),
                               efa_interfaces=len(res["efa"][trial["instance_type"]]))
            self.failover = attempts
            try:
                self._tag_ranks(spec.cluster, nodes)
            except CloudError:
                self._terminate([n.id for n in nodes])
                raise
            return nodes
        self.failover = attempts
        raise CapacityError(
            "no placement had capacity for %d x %s" % (len(ranks), "/".join(sorted(res["infos"]))),
            hint="Tried, in order: %s. Add placements (other subnets/AZs, alternative instance types), set min_count "
                 "to accept fewer nodes, or retry later" % "; ".join(
                     "%s %s: %s" % (a["availability_zone"], a["instance_type"], a["error"]) for a in attempts + res["skipped"]))

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
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
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
        want = dict((n.id, n.rank) for n in nodes)
        if not want:
            return []
        pending = {}

        def ready():
            insts = dict((i["InstanceId"], i) for i in self._instances(cluster, live_only=False))
            pending.clear()
            for iid in want:
                inst = insts.get(iid)
                state = inst["State"]["Name"] if inst else "not visible yet"
                if state in ("shutting-down", "terminated"):
                    reason = (inst.get("StateReason") or {})
                    raise CloudError("node %s (%s) was terminated while starting: %s"
                                     % (node_name(cluster, want[iid]), iid, reason.get("Message") or state),
                                     hint="Spot capacity may have been reclaimed, or the image failed to boot",
                                     code=reason.get("Code"))
                if state != "running":
                    pending[iid] = state
            if pending:
                return None
            return [node_from_instance(insts[i], cluster, rank=want[i]) for i in want]
        ready.pending = lambda: ", ".join("%s (%s)" % kv for kv in sorted(pending.items()))
        return retry.wait_until(ready, timeout, interval=2.0, what="%d node(s) of %s to run" % (len(want), cluster),
                                sleep=self.sleep)

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
    def _cluster_group(self, cluster):
        groups = self._pages("describe_security_groups", "SecurityGroups", Filters=self._owned_filters(cluster))
        if len(groups) > 1:
            raise ConfigError("cluster %s has %d security groups: %s" % (cluster, len(groups),
                                                                         ", ".join(g["GroupId"] for g in groups)),
                              hint="Delete the extra ones; the collection manages one per cluster")
        return groups[0] if groups else None

    def _default_vpc(self):
        vpcs = self._call("describe_vpcs", Filters=[{"Name": "is-default", "Values": ["true"]}]).get("Vpcs") or []
        if not vpcs:
            raise ConfigError("the region %s has no default VPC" % self.region, hint="Set vpc_id")
        return vpcs[0]["VpcId"]

    def _create_group(self, cluster, name, vpc_id, tags):
        try:
            return self._call("create_security_group", GroupName=name, VpcId=vpc_id,
                              Description="aiinfra.gpu_cluster %s: SSH from admin CIDRs, all traffic inside" % cluster,
                              TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags)}])["GroupId"]
        except ConfigError as exc:
            if exc.code != "InvalidGroup.Duplicate":
                raise
        # the group exists: ours from an attempt whose answer was lost, or somebody else's
        group = self._cluster_group(cluster)
        if group is None:
            raise ConfigError("a security group named %s exists but does not carry cluster %s's tags" % (name, cluster),
                              hint="Delete or rename it, or tag it %s=%s and %s=%s"
                                   % (CLUSTER_TAG, cluster, MANAGED_TAG, MANAGED_VALUE))
        return group["GroupId"]

    def ensure_firewall(self, cluster, rules, purge=False, check_mode=False, labels=None):
        name = group_name(cluster)
        group = self._cluster_group(cluster)
        desired = list(dict.fromkeys(rules))
        if group is None:
            # EC2 gives every new group an allow-all IPv4 egress rule
            existing = [RuleSpec("egress", "all", -1, -1, "0.0.0.0/0")]
            gid = None
            if not check_mode:
                vpc_id = self.opts.get("vpc_id") or self._default_vpc()
                tags = dict(labels or {})
                tags.update({CLUSTER_TAG: cluster, MANAGED_TAG: MANAGED_VALUE, "Name": name})
                gid = self._create_group(cluster, name, vpc_id, tags)
        else:
            gid = group["GroupId"]
            if self.opts.get("vpc_id") and group.get("VpcId") != self.opts["vpc_id"]:
                raise ConfigError("the cluster's security group %s is in %s, not %s"
                                  % (gid, group.get("VpcId"), self.opts["vpc_id"]),
                                  hint="Tear the cluster down to move it to another VPC")
            existing = rules_from_group(group)
        add = [r for r in desired if r not in existing]
        remove = [r for r in existing if r not in desired] if purge else []
        if not check_mode:
            for direction in ("ingress", "egress"):
                these = [r for r in add if r.direction == direction]
                if these:
                    try:
                        self._call("authorize_security_group_%s" % direction, GroupId=gid,
                                   IpPermissions=permissions_from_rules(these, gid))
                    except ConfigError as exc:
                        # an earlier attempt went through but its answer was lost
                        if exc.code != "InvalidPermission.Duplicate":
                            raise
            for direction in ("ingress", "egress"):
                these = [r for r in remove if r.direction == direction]
                if these:
                    try:
                        self._call("revoke_security_group_%s" % direction, GroupId=gid,
                                   IpPermissions=permissions_from_rules(these, gid, descriptions=False))
                    except NotFoundError as exc:
                        if exc.code != "InvalidPermission.NotFound":
                            raise
        after = [r for r in existing if r not in remove] + add
        return {
            "changed": group is None or bool(add or remove),
            "created": group is None,
            "id": gid,
            "name": name,
            "before": [str(r) for r in existing] if group is not None else [],
            "rules": [r.to_dict() for r in after],
            "added": [str(r) for r in add],
            "removed": [str(r) for r in remove],
            "after": [str(r) for r in after],
        }

    def delete_firewall(self, cluster, check_mode=False):
        group = self._cluster_group(cluster)
        if group is None:
            return {"changed": False, "deleted": []}
        before = [str(r) for r in rules_from_group(group)]
        if not check_mode:
            try:
                self._call("delete_security_group", GroupId=group["GroupId"])
            except ConfigError as exc:
                if exc.code == "DependencyViolation":
                    raise ConfigError("security group %s of cluster %s is still in use" % (group["GroupId"], cluster),
                                      hint="Remove the cluster's nodes first (aiinfra.gpu_cluster.instance state=absent)",
                                      code=exc.code)
                raise
        return {"changed": True, "deleted": ["security-group/%s (%s)" % (group["GroupName"], group["GroupId"])],
                "before": before, "id": group["GroupId"], "name": group["GroupName"]}

    def describe(self):
        info = {"cloud": self.name, "region": self.region}
        if self.landed:
            info["landed"] = self.landed
        if self.failover:
            info["failover"] = self.failover
        if self._nodes and not self.landed:
            info["zones"] = sorted(set(n.zone for n in self._nodes if n.zone))
        if self._resolved:
            info["image"] = self._resolved["image"].get("ImageId")
            info["image_name"] = self._resolved["image"].get("Name")
            info["security_groups"] = list(self._resolved["groups"])
            info["placement_group"] = (self._resolved["placement_group"] or {}).get("name")
            info["key_name"] = self._resolved["key"]["name"]
        info["api_calls"] = self.calls
        return info
