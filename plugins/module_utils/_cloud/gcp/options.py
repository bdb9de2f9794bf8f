# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of cloud ``gcp``, declared once (see :mod:`.._cloud.options`)."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.options import Cloud, Option

CLOUD = Cloud("gcp", requirements=("google-auth and requests (for O(cloud=gcp), on the host that runs the module)",),
              options=(
    # how to reach Compute Engine
    Option("project", ("The Google Cloud project id. Defaults to C(GCP_PROJECT), C(GOOGLE_CLOUD_PROJECT), else the "
                       "credentials' own project.",)),
    Option("credentials_file", ("A service-account key file (JSON). Its C(token_uri) is honoured.",
                                "Defaults to C(GCP_SERVICE_ACCOUNT_FILE), C(GOOGLE_APPLICATION_CREDENTIALS), else "
                                "Application Default Credentials (C(gcloud auth application-default login), or the "
                                "VM's service account)."), type="path", no_log=False),
    Option("endpoint_url", ("The Compute API root (default C(https://compute.googleapis.com/compute/v1/)).",)),
    Option("region", ("A Compute Engine region (e.g. C(us-central1)) whose zones are tried when no placements are "
                      "given.",)),
    Option("network", ("The VPC network of the nodes and the firewall rules (default C(default)).",)),
    # the instance module
    Option("placements", ("Each entry names a O(placements[].zone); a stockout (C(ZONE_RESOURCE_POOL_EXHAUSTED)) moves "
                          "on to the next at once. Unset, the zones of O(region) are tried in order.",),
           type="list", elements="dict", scope="instance", suboptions=(
               Option("zone", ("A Compute Engine zone, e.g. C(us-central1-a).",)),)),
    Option("min_count", ("Accept a cluster of at least this many nodes when capacity is short (bulkInsert "
                         "C(minCount)). By default the launch is all-or-nothing.",), type="int", scope="instance"),
    Option("spot", ("Launch Spot VMs, deleted when preempted.",), type="bool", scope="instance"),
    Option("reservation", (
        "Launch into a specific reservation (C(reservationAffinity) C(SPECIFIC_RESERVATION), key "
        "C(compute.googleapis.com/reservation-name)), named by O(reservation.id).",
        "Before anything is created it is looked up in each placement's zone (C(reservations.get)): it must be of "
        "the machine type with enough free instances (C(count) - C(inUseCount)). Zones without it launch outside "
        "it, after the zones with it; a reservation found full fails over to them like a stockout. Not with O(spot).",
    ), type="dict", scope="instance", suboptions=(
        Option("id", ("The reservation's name (of the project), or C(projects/PROJECT/reservations/NAME) for a "
                      "reservation shared by another project.",)),)),
    Option("root_volume_size", ("Boot disk size in GiB (default the image's). Deleted with the node.",),
           type="int", scope="instance"),
    Option("subnetwork", ("A subnetwork of O(network) (by name; it must exist in the region of every placement). "
                          "Default the network's subnetwork of the region (auto-mode networks).",), scope="instance"),
    Option("accelerators", ("GPUs to attach to machine types without built-in ones (N1), e.g. one entry with "
                            "O(accelerators[].type=nvidia-tesla-v100) and O(accelerators[].count=8). A2, A3, A4 and G2 "
                            "types have their GPUs built in; setting this with them is an error.",),
           type="list", elements="dict", scope="instance", suboptions=(
               Option("type", ("The GPU type (an accelerator type of the zone), e.g. C(nvidia-tesla-t4).",),
                      required=True),
               Option("count", ("GPUs per node.",), type="int", default=1),)),
    Option("public_ip", ("An ephemeral external IP per node (an C(ONE_TO_ONE_NAT) access config); unset means yes. "
                         "Set C(false) for a controller inside the network; the nodes are then reached at their "
                         "private addresses.",), type="bool", scope="instance"),
    # the firewall module
    Option("allow_network_rules", ("Accept rules of the network itself that admit the nodes from wider than "
                                   "O(admin_cidrs) (for example the C(default) network's C(default-allow-ssh) from "
                                   "C(0.0.0.0/0) and C(default-allow-internal) from C(10.128.0.0/9)). Unset, the module "
                                   "fails naming them; delete or narrow them, or use a network of your own.",),
           type="bool", default=False, scope="firewall"),
))
