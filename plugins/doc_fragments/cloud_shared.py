# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Generated from plugins/module_utils/_cloud/<cloud>/options.py by tests/gen_cloud_docs.py --write.
# Do not edit: edit the declarations (tests/unit/plugins/module_utils/_cloud/test_cloud_options.py checks they agree).

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  endpoint_url:
    description:
      - On O(cloud=aws), talk to this EC2 endpoint instead of the region's public one (a VPC endpoint,
        a test server). Defaults to C(AWS_ENDPOINT_URL_EC2) / C(AWS_ENDPOINT_URL) when set.
      - On O(cloud=azure), the Resource Manager root (default C(https://management.azure.com), a sovereign
        cloud's, or a test server's); tokens are asked for its C(/.default) scope.
      - On O(cloud=gcp), the Compute API root (default C(https://compute.googleapis.com/compute/v1/)).
      - For O(cloud=aws), O(cloud=azure), O(cloud=gcp).
    type: str
  region:
    description:
      - On O(cloud=aws), the AWS region, e.g. C(us-east-1). Defaults to C(AWS_REGION) / C(AWS_DEFAULT_REGION)
        or the profile's region.
      - On O(cloud=gcp), A Compute Engine region (e.g. C(us-central1)) whose zones are tried when no placements
        are given.
      - For O(cloud=aws), O(cloud=gcp).
    type: str
"""

    INSTANCE = r"""
options:
  min_count:
    description:
      - On O(cloud=aws), accept a cluster of at least this many nodes when capacity is short (RunInstances
        MinCount). By default the launch is all-or-nothing (MinCount = MaxCount). A later run adds the
        missing nodes.
      - On O(cloud=gcp), accept a cluster of at least this many nodes when capacity is short (bulkInsert
        C(minCount)). By default the launch is all-or-nothing.
      - For O(cloud=aws), O(cloud=gcp).
    type: int
  placements:
    description:
      - On O(cloud=aws), each entry names a O(placements[].subnet_id), an O(placements[].availability_zone)
        (its default subnet), or neither (every availability zone of the default VPC, in order), and optionally
        an alternative O(placements[].instance_type).
      - An C(InsufficientInstanceCapacity) (or kin) in one placement moves on to the next at once; throttling
        and 5xx are retried in place; quota errors fail at once.
      - Unset, every availability zone of the default VPC that offers the instance type is tried in order.
        Once a cluster has nodes, new nodes go to the same availability zone.
      - On O(cloud=azure), each entry names a O(placements[].location) and optionally a O(placements[].zone);
        C(AllocationFailed), C(ZonalAllocationFailed), C(SkuNotAvailable) and C(OverconstrainedAllocationRequest)
        move on to the next at once.
      - On O(cloud=gcp), each entry names a O(placements[].zone); a stockout (C(ZONE_RESOURCE_POOL_EXHAUSTED))
        moves on to the next at once. Unset, the zones of O(region) are tried in order.
      - For O(cloud=aws), O(cloud=azure), O(cloud=gcp).
    type: list
    elements: dict
    suboptions:
      subnet_id:
        description:
          - A subnet (of the VPC of the cluster's security group).
          - Only for O(cloud=aws).
        type: str
      availability_zone:
        description:
          - An availability zone; its default subnet is used unless O(placements[].subnet_id) is set.
          - Only for O(cloud=aws).
        type: str
      instance_type:
        description:
          - Instance type for this placement instead of O(instance_type).
          - Only for O(cloud=aws).
        type: str
      location:
        description:
          - An Azure location, e.g. C(eastus).
          - Only for O(cloud=azure).
        type: str
      zone:
        description:
          - On O(cloud=azure), an availability zone (C(1), C(2), C(3)) of O(placements[].location). Zonal
            nodes get no availability set (Azure allows one or the other); leave unset for ND-series InfiniBand
            clusters.
          - On O(cloud=gcp), A Compute Engine zone, e.g. C(us-central1-a).
          - For O(cloud=azure), O(cloud=gcp).
        type: str
  public_ip:
    description:
      - On O(cloud=aws), C(AssociatePublicIpAddress) of the node's network interface; unset, the subnet's
        own setting decides (the default VPC's subnets give one). EFA types with several network interfaces
        never get one, and C(true) with them is an error.
      - On O(cloud=azure), A Standard static public IP per node (deleted with the node); unset means yes.
        Set C(false) for a controller inside the network (a bastion, VPN, peered VNet); the nodes are
        then reached at their private addresses and nothing reaches them from the internet.
      - On O(cloud=gcp), an ephemeral external IP per node (an C(ONE_TO_ONE_NAT) access config); unset
        means yes. Set C(false) for a controller inside the network; the nodes are then reached at their
        private addresses.
      - For O(cloud=aws), O(cloud=azure), O(cloud=gcp).
    type: bool
  reservation:
    description:
      - 'On O(cloud=aws), launch into reserved capacity: an On-Demand Capacity Reservation (O(reservation.id)),
        a Capacity Block (O(reservation.id) of a C(capacity-block) reservation: C(InstanceMarketOptions.MarketType:
        capacity-block)), or a capacity reservation resource group (O(reservation.group_arn); its members
        are not looked up).'
      - 'Before anything is created the reservation is looked up (C(DescribeCapacityReservations)): it
        must be active, of the instance type, in a placement''s availability zone, with enough free instances.
        Placements it does not fit launch outside it; a reservation found full fails over to them like
        a stockout.'
      - Not with O(spot).
      - On O(cloud=azure), launch into a capacity reservation group (C(capacityReservation.capacityReservationGroup.id)),
        named by O(reservation.id).
      - 'Before anything is created the group and its reservations are looked up: one must be of the VM
        size, in a placement''s location and zone (a zonal group''s reservations take zonal VMs, a regional
        one''s regional VMs), with enough free instances (its capacity less the VMs associated). Placements
        it does not fit launch outside it, after those it fits; a group found full fails over to them
        like a stockout. Not with O(spot).'
      - On O(cloud=gcp), launch into a specific reservation (C(reservationAffinity) C(SPECIFIC_RESERVATION),
        key C(compute.googleapis.com/reservation-name)), named by O(reservation.id).
      - 'Before anything is created it is looked up in each placement''s zone (C(reservations.get)): it
        must be of the machine type with enough free instances (C(count) - C(inUseCount)). Zones without
        it launch outside it, after the zones with it; a reservation found full fails over to them like
        a stockout. Not with O(spot).'
      - For O(cloud=aws), O(cloud=azure), O(cloud=gcp).
    type: dict
    suboptions:
      id:
        description:
          - On O(cloud=aws), A capacity reservation's or Capacity Block's id (C(cr-...)).
          - On O(cloud=azure), the capacity reservation group's resource id, C(/subscriptions/SUB/resourceGroups/RG/...)
            ending in C(.../providers/Microsoft.Compute/capacityReservationGroups/NAME).
          - On O(cloud=gcp), the reservation's name (of the project), or C(projects/PROJECT/reservations/NAME)
            for a reservation shared by another project.
          - For O(cloud=aws), O(cloud=azure), O(cloud=gcp).
        type: str
      group_arn:
        description:
          - A capacity reservation resource group's ARN (C(arn:aws:resource-groups:...)), instead of O(reservation.id).
          - Only for O(cloud=aws).
        type: str
      capacity_block:
        description:
          - The reservation is a Capacity Block for ML; unset, read from the reservation's C(ReservationType).
          - Only for O(cloud=aws).
        type: bool
  root_volume_size:
    description:
      - On O(cloud=aws), root volume size in GiB (default the image's). Deleted with the node.
      - On O(cloud=azure), OS disk size in GiB (default the image's). Deleted with the node.
      - On O(cloud=gcp), boot disk size in GiB (default the image's). Deleted with the node.
      - For O(cloud=aws), O(cloud=azure), O(cloud=gcp).
    type: int
  spot:
    description:
      - On O(cloud=aws), launch spot instances (one-time, terminated on interruption).
      - On O(cloud=azure), launch Spot VMs, deleted on eviction.
      - On O(cloud=gcp), launch Spot VMs, deleted when preempted.
      - 'On O(cloud=local), mark local nodes as spot nodes (the label C(aiinfra-market=spot); their C(market)
        is C(spot), else C(on_demand)). Nothing else changes: no cloud takes a local node back - writing
        C(/run/aiinfra/spot-notice) on a node plays the notice. It lets a test follow the spot recovery
        (C(gpu_cluster_spot_fallback_after)) on local nodes.'
      - For O(cloud=aws), O(cloud=azure), O(cloud=gcp), O(cloud=local).
    type: bool
"""
