#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: object_sync
short_description: Copy an object storage prefix to a node's directory, or a directory to a prefix, verified
version_added: 0.1.0
description:
  - With O(src) an object storage URI and O(dest) a directory on the node, downloads the objects under the
    prefix (or this node's shard of them) in parallel, each to a temporary name, verifies it and renames it into
    place. Verification - size, then the sha256 the object was uploaded with; without one, the service's own
    checksum - S3 the ETag (the MD5 of a single-part upload, recomputed for a multipart one), Cloud Storage the
    object's C(md5Hash) and C(crc32c), Azure the blob's C(Content-MD5), or for a blob written in blocks without one
    the MD5 the service computes for each range it sends. The bytes are hashed as they are written, never read twice.
  - URIs - C(s3://BUCKET/PREFIX) (S3 and S3-compatible stores), C(gs://BUCKET/PREFIX) (Google Cloud Storage),
    C(az://CONTAINER/PREFIX) (Azure Blob Storage; the storage account is O(storage_options.account_name)).
  - A manifest in O(dest) (C(.aiinfra-manifest.json)) records what arrived verified, so a
    re-run transfers only what changed and reports C(changed=false) when nothing did.
  - With O(src) a directory and O(dest) a URI, uploads the files not stored yet as they are now, each with its
    sha256 as object metadata.
  - Checks the bucket and the credentials before anything is copied. A corrupt object is skipped and reported in
    RV(corrupt), never left under its final name.
  - Needs the store's client library where it runs - boto3, google-cloud-storage, or azure-storage-blob and
    azure-identity (the node's storage client virtualenv, see the role C(aiinfra.gpu_cluster.dataset),
    C(tasks_from=client.yml), which installs those of the schemes in use).
author:
  - aiinfra platform team (@aiinfra)
attributes:
  check_mode:
    support: full
    description: Lists in RV(would_transfer) what would move; writes nothing.
  diff_mode:
    support: none
    description: Not applicable.
requirements:
  - boto3 (s3://)
  - google-cloud-storage (gs://)
  - azure-storage-blob and azure-identity (az://)
options:
  src:
    description: An object storage URI (download) or a directory on the node (upload).
    type: str
    required: true
  dest:
    description: A directory on the node (download) or an object storage URI (upload).
    type: str
    required: true
  shard_index:
    description: With O(shard_count), download only the objects whose key hashes to this shard (0-based).
    type: int
  shard_count:
    description: The number of shards (nodes); objects are assigned by a stable hash of their key.
    type: int
  require_checksum:
    description: Download only objects that carry the sha256 they were uploaded with (and match it); others are
      reported as corrupt.
    type: bool
    default: false
  complete_only:
    description:
      - Download only complete files, by the checkpoint completeness rule - C(NAME) is complete when C(NAME.sha256)
        (C(sha256sum)'s format, written after C(NAME) was renamed into place) holds its sha256; a marker is placed
        after its file. The others are skipped and named in RV(corrupt) (their reason starts with C(incomplete)).
    type: bool
    default: false
  owner:
    description:
      - Do the transfer as this user (its uid, gid and groups, in a child process), not as the user the module runs
        as; a download writes, and an upload reads, only what that user may. With a download, O(dest) is made for
        that user first, without following a symbolic link on the way (the module must run as root then).
      - A symbolic link in the tree is never followed either way (an upload skips it; a download refuses to write
        through one below O(dest)).
    type: str
  workers:
    description: Files transferred at once.
    type: int
    default: 8
  stable_seconds:
    description: When uploading, skip files modified less than this many seconds ago (still being written).
    type: float
    default: 0
  storage_options:
    description:
      - The object store's connection, as C(gpu_cluster_storage_options). Each store reads its own keys and
        ignores the others'. Unset or empty keys are left to the node's own identity - S3 boto3's chain (environment,
        shared config, the instance profile); Cloud Storage google.auth's default (on GCE the metadata server's
        service account); Azure azure-identity's DefaultAzureCredential (on an Azure VM its managed identity).
    type: dict
    default: {}
    suboptions:
      endpoint_url:
        description:
          - s3 - an S3-compatible endpoint (MinIO, moto, a VPC endpoint).
          - gs - the JSON API's endpoint (an emulator, a private endpoint), e.g. C(http://10.0.0.5:9023).
          - az - the account's blob endpoint (Azurite, a sovereign cloud, a private endpoint), e.g.
            C(http://10.0.0.5:10000/devstoreaccount1); default C(https://<account_name>.blob.core.windows.net).
        type: str
      region:
        description: s3 - the bucket's region.
        type: str
      access_key:
        description: s3 - access key id. Never logged.
        type: str
      secret_key:
        description: s3 - secret access key. Never logged.
        type: str
      session_token:
        description: s3 - session token for temporary credentials. Never logged.
        type: str
      credentials:
        description:
          - gs - the content of a service account key file (its JSON, as a string or a mapping). Never logged.
          - Unset - the node's own service account (GCE metadata server) or C(GOOGLE_APPLICATION_CREDENTIALS).
        type: raw
      anonymous:
        description: gs - no credentials at all (public buckets, emulators). Not with O(storage_options.credentials).
        type: bool
      account_name:
        description: az - the storage account (required for C(az://)).
        type: str
      account_key:
        description: az - the account's shared key. Never logged. Not with O(storage_options.sas_token).
        type: str
      sas_token:
        description: az - a SAS token (account or container) with read, list, write and create permissions. Never logged.
        type: str
"""

EXAMPLES = r"""
- name: Stage this node's shard of the dataset
  aiinfra.gpu_cluster.object_sync:
    src: s3://training-data/imagenet/train
    dest: /data/imagenet
    shard_index: "{{ gpu_cluster_rank }}"
    shard_count: "{{ groups['gpu_nodes'] | length }}"
    storage_options: "{{ gpu_cluster_storage_options }}"
  vars:
    ansible_python_interpreter: /opt/aiinfra/storage/venv/bin/python

- name: Stage a dataset from Cloud Storage with the node's own service account
  aiinfra.gpu_cluster.object_sync:
    src: gs://training-data/imagenet/train
    dest: /data/imagenet
  vars:
    ansible_python_interpreter: /opt/aiinfra/storage/venv/bin/python

- name: Stage a dataset from Azure Blob Storage with an account key
  aiinfra.gpu_cluster.object_sync:
    src: az://training-data/imagenet/train
    dest: /data/imagenet
    storage_options:
      account_name: mlstorage01
      account_key: "{{ vault_azure_storage_key }}"
  vars:
    ansible_python_interpreter: /opt/aiinfra/storage/venv/bin/python

- name: Upload the checkpoints written so far
  aiinfra.gpu_cluster.object_sync:
    src: /var/lib/aiinfra/checkpoints/run7
    dest: s3://training-ckpt/run7
  vars:
    ansible_python_interpreter: /opt/aiinfra/storage/venv/bin/python
"""

RETURN = r"""
transferred:
  description: Paths (download, relative to O(dest)) or keys (upload) transferred and verified.
  type: list
  elements: str
  returned: always
present:
  description: Already there and unchanged (not transferred).
  type: list
  elements: str
  returned: always
would_transfer:
  description: In check mode, what would move (C(key), C(path), C(size)).
  type: list
  elements: dict
  returned: always
corrupt:
  description: Objects that failed verification (C(key), C(path), C(reason)); not written under their final name.
  type: list
  elements: dict
  returned: always
failed_transfers:
  description:
    - Transfers that failed (C(key), C(path), C(error)); the task fails when there are any, and still returns them
      (with what did transfer).
    - Named so that Ansible's own C(failed) flag does not replace it.
  type: list
  elements: dict
  returned: always
bytes:
  description: Bytes transferred.
  type: int
  returned: always
seconds:
  description: Wall time of the whole sync, listing and verification included.
  type: float
  returned: always
mb_per_s:
  description: RV(bytes) / RV(seconds), in MB (10^6 bytes) per second.
  type: float
  returned: always
listed:
  description: Objects under the prefix (before sharding).
  type: int
  returned: always
"""

import os  # noqa: E402
import pwd  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import nofollow  # noqa: E402
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._storage import sync  # noqa: E402
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._storage.base import (  # noqa: E402
    StorageError, open_store)

OPTION_SPEC = dict(endpoint_url=dict(type="str"), region=dict(type="str"),
                   access_key=dict(type="str", no_log=True), secret_key=dict(type="str", no_log=True),
                   session_token=dict(type="str", no_log=True),
                   credentials=dict(type="raw", no_log=True), anonymous=dict(type="bool"),
                   account_name=dict(type="str"), account_key=dict(type="str", no_log=True),
                   sas_token=dict(type="str", no_log=True))


def transfer(store, prefix, p, src_uri, check_mode):
    """The sync itself (as the module's user, or in run_as's child as O(owner): the store is made before, so that
    nothing is imported from the module's payload, root's, once the child is another user)."""
    try:
        if src_uri:
            shard = (p["shard_index"], p["shard_count"]) if p["shard_count"] is not None else None
            return sync.pull(store, prefix, p["dest"], shard=shard, require_sha256=p["require_checksum"],
                             check_mode=check_mode, workers=p["workers"], complete_only=p["complete_only"])
        return sync.push(store, p["src"], prefix, stable_seconds=p["stable_seconds"], check_mode=check_mode,
                         workers=p["workers"])
    finally:
        store.close()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="str", required=True), dest=dict(type="str", required=True),
            shard_index=dict(type="int"), shard_count=dict(type="int"),
            require_checksum=dict(type="bool", default=False), workers=dict(type="int", default=8),
            stable_seconds=dict(type="float", default=0),
            complete_only=dict(type="bool", default=False), owner=dict(type="str"),
            storage_options=dict(type="dict", default={}, options=OPTION_SPEC)),
        required_together=[("shard_index", "shard_count")],
        supports_check_mode=True)
    p = module.params
    src_uri, dest_uri = "://" in p["src"], "://" in p["dest"]
    if src_uri == dest_uri:
        module.fail_json(msg="exactly one of src and dest must be an object storage URI (s3://, gs:// or az://), the "
                             "other a directory on the node; got src=%r dest=%r" % (p["src"], p["dest"]))
    options = dict((k, v) for k, v in (p["storage_options"] or {}).items() if v not in (None, ""))
    owner = None
    if p["owner"]:
        try:
            owner = pwd.getpwnam(p["owner"])
        except KeyError:
            module.fail_json(msg="owner %r: no such user on this node" % p["owner"])
        if src_uri and not module.check_mode:
            try:
                nofollow.make_dir(os.path.abspath(p["dest"]), owner)
            except OSError as exc:
                module.fail_json(msg="cannot make %s for %s: %s" % (p["dest"], p["owner"], exc))
    try:
        store, prefix = open_store(p["src"] if src_uri else p["dest"], options)
        if owner is not None:
            res = nofollow.run_as(owner, transfer, store, prefix, p, src_uri, module.check_mode)
        else:
            res = transfer(store, prefix, p, src_uri, module.check_mode)
    except (StorageError, nofollow.RunAsError) as exc:
        module.fail_json(msg=str(exc))
    for item in res["corrupt"]:
        module.warn("skipped corrupt object %s: %s" % (item["key"], item["reason"]))
    out = dict(res)
    # a list under "failed" would be replaced by fail_json's own flag
    failed = out["failed_transfers"] = out.pop("failed")
    if failed:
        module.fail_json(msg="%d of %d transfers failed; first: %s" % (
            len(failed), len(failed) + len(res["transferred"]), failed[0]["error"]), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
