# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of cloud ``aws``, declared once (see :mod:`.._cloud.options`)."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.options import Cloud, Option

CLOUD = Cloud("aws", requirements=("boto3 (for O(cloud=aws), on the host that runs the module)",), options=(
    # how to reach EC2; unset options fall back to boto3's usual chain
    Option("region", ("The AWS region, e.g. C(us-east-1). Defaults to C(AWS_REGION) / C(AWS_DEFAULT_REGION) or the "
                      "profile's region.",)),
    Option("endpoint_url", ("Talk to this EC2 endpoint instead of the region's public one (a VPC endpoint, a test "
                            "server). Defaults to C(AWS_ENDPOINT_URL_EC2) / C(AWS_ENDPOINT_URL) when set.",)),
    Option("access_key", ("AWS access key id. When unset, boto3's credential chain is used (C(AWS_ACCESS_KEY_ID), "
                          "C(AWS_PROFILE) and C(~/.aws), container or instance role).",), no_log=False),
    Option("secret_key", ("AWS secret access key, with O(access_key). Never logged.",), no_log=True),
    Option("session_token", ("AWS session token for temporary credentials, with O(access_key). Never logged.",),
           no_log=True),
    Option("profile", ("A named profile of C(~/.aws/config) / C(~/.aws/credentials).",)),
    # the instance module
    Option("placements", (
        "Each entry names a O(placements[].subnet_id), an O(placements[].availability_zone) (its default subnet), "
        "or neither (every availability zone of the default VPC, in order), and optionally an alternative "
        "O(placements[].instance_type).",
        "An C(InsufficientInstanceCapacity) (or kin) in one placement moves on to the next at once; throttling and "
        "5xx are retried in place; quota errors fail at once.",
        "Unset, every availability zone of the default VPC that offers the instance type is tried in order. Once a "
        "cluster has nodes, new nodes go to the same availability zone.",
    ), type="list", elements="dict", scope="instance", suboptions=(
        Option("subnet_id", ("A subnet (of the VPC of the cluster's security group).",)),
        Option("availability_zone", ("An availability zone; its default subnet is used unless "
                                     "O(placements[].subnet_id) is set.",)),
        Option("instance_type", ("Instance type for this placement instead of O(instance_type).",)),
    )),
    Option("min_count", ("Accept a cluster of at least this many nodes when capacity is short (RunInstances "
                         "MinCount). By default the launch is all-or-nothing (MinCount = MaxCount). A later run adds "
                         "the missing nodes.",), type="int", scope="instance"),
    Option("key_name", ("An existing EC2 key pair to launch with. When unset, O(ssh_public_key) is imported as a key "
                        "pair of the cluster's own (deleted with the cluster). With O(key_name) and no "
                        "O(ssh_public_key), set O(ssh_user) to the login the key pair is installed for.",),
           scope="instance", no_log=False),
    Option("security_groups", ("Security groups (ids or names) to attach besides the cluster's own, which "
                               "M(aiinfra.gpu_cluster.firewall) creates. One of the two is required.",),
           type="list", elements="str", scope="instance"),
    Option("placement_group", ("Launch into a cluster placement group C(aiinfra-<cluster>) (created and reused; "
                               "deleted with the cluster).",
                               "Unset means yes when the instance type supports cluster placement groups; C(true) "
                               "fails when it does not."), type="bool", scope="instance"),
    Option("efa", ("Attach Elastic Fabric Adapter interfaces, read from C(DescribeInstanceTypes) - an C(efa) interface "
                   "on the first network card and C(efa-only) ones on the others, as many as the type allows.",
                   "Unset means yes when the instance type has EFA; C(true) fails when it does not.",
                   "EFA nodes have several network interfaces, so EC2 gives them no public IPv4 address; reach them "
                   "from inside the VPC (a bastion, VPN or SSM)."), type="bool", scope="instance"),
    Option("root_volume_size", ("Root volume size in GiB (default the image's). Deleted with the node.",),
           type="int", scope="instance"),
    Option("root_volume_type", ("Root volume type (default C(gp3)).",), choices=("gp3", "gp2", "io1", "io2"),
           scope="instance"),
    Option("spot", ("Launch spot instances (one-time, terminated on interruption).",), type="bool", scope="instance"),
    Option("reservation", (
        "Launch into reserved capacity: an On-Demand Capacity Reservation (O(reservation.id)), a Capacity Block "
        "(O(reservation.id) of a C(capacity-block) reservation: C(InstanceMarketOptions.MarketType: capacity-block)), "
        "or a capacity reservation resource group (O(reservation.group_arn); its members are not looked up).",
        "Before anything is created the reservation is looked up (C(DescribeCapacityReservations)): it must be "
        "active, of the instance type, in a placement's availability zone, with enough free instances. Placements "
        "it does not fit launch outside it; a reservation found full fails over to them like a stockout.",
        "Not with O(spot).",
    ), type="dict", scope="instance", suboptions=(
        Option("id", ("A capacity reservation's or Capacity Block's id (C(cr-...)).",)),
        Option("group_arn", ("A capacity reservation resource group's ARN (C(arn:aws:resource-groups:...)), instead "
                             "of O(reservation.id).",)),
        Option("capacity_block", ("The reservation is a Capacity Block for ML; unset, read from the reservation's "
                                  "C(ReservationType).",), type="bool"),
    )),
    Option("image_owners", ("Owners searched when O(image) is a name pattern (default C(self) and C(amazon)); add e.g. "
                            "Canonical's C(099720109477) for Ubuntu images.",),
           type="list", elements="str", scope="instance"),
    Option("public_ip", ("C(AssociatePublicIpAddress) of the node's network interface; unset, the subnet's own "
                         "setting decides (the default VPC's subnets give one). EFA types with several network "
                         "interfaces never get one, and C(true) with them is an error.",),
           type="bool", scope="instance"),
    # the firewall module
    Option("vpc_id", ("The VPC of the security group, when it is created (default the region's default VPC). The "
                      "cluster's subnets must be in the same VPC.",), scope="firewall"),
))
