# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure Blob Storage (``az://CONTAINER/PREFIX``) with azure-storage-blob.

The storage account is the option ``account_name`` (a connection setting, like ``endpoint_url``), so the URI has
the bucket shape of the other stores: ``az://CONTAINER/PREFIX``. Options (``gpu_cluster_storage_options``):
``account_name``, ``account_key`` or ``sas_token`` (never logged), ``endpoint_url`` (Azurite, a sovereign cloud, a
private endpoint: the account's blob endpoint, e.g. ``http://127.0.0.1:10000/devstoreaccount1``; default
``https://<account_name>.blob.core.windows.net``). With neither key nor token, azure-identity's
DefaultAzureCredential: on an Azure VM its managed identity (it needs the role Storage Blob Data Contributor).

Verification: every object uploaded here carries its sha256 as metadata and its Content-MD5 (set by us, so a
blob written in blocks has one too). A download is hashed as it is written (sha256, md5) and compared with the
blob's Content-MD5; a blob without one (written in blocks by another tool) is downloaded in ranges of at most
4 MiB, each checked against the MD5 the service computes for that range (``x-ms-range-get-content-md5``). The
download is pinned to the listed ETag. The bytes are never read twice.
"""

from __future__ import annotations

import hashlib
import os

from .base import ObjectInfo, Store, StorageError

try:
    from azure.core import MatchConditions
    from azure.core import exceptions as aexc
    from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
    from azure.storage.blob import ContainerClient, ContentSettings, ExponentialRetry
    HAS_AZURE = True
    AZURE_IMPORT_ERROR = None
except ImportError as exc:  # the storage client venv has them when an az:// URI is in use
    HAS_AZURE = False
    AZURE_IMPORT_ERROR = exc

MiB = 1024 * 1024
READ_SIZE = 1 * MiB
SHA256_META = "sha256"
CREDENTIALS_HINT = ("set gpu_cluster_storage_options.account_key or sas_token (no_log), or give the nodes a managed "
                    "identity with the role Storage Blob Data Contributor on the account")


def classify(exc, what, container, account):
    """A StorageError with a hint for an azure-core exception raised while doing ``what``."""
    if isinstance(exc, StorageError):
        return exc
    text = str(exc).split("\n", maxsplit=1)[0]
    if isinstance(exc, aexc.ClientAuthenticationError):
        if "DefaultAzureCredential" in str(exc) or exc.__class__.__name__ == "CredentialUnavailableError":
            return StorageError("%s: no Azure credentials found (no account key, SAS token or managed identity)"
                                % what, CREDENTIALS_HINT)
        return StorageError("%s: the Azure credentials for account %s were rejected (%s)" % (
            what, account, getattr(exc, "error_code", None) or text), CREDENTIALS_HINT)
    if isinstance(exc, aexc.ResourceNotFoundError):
        code = getattr(exc, "error_code", "") or ""
        if str(getattr(code, "value", code)) == "BlobNotFound":
            return StorageError("%s: the blob is gone" % what, "run it again")
        return StorageError("%s: container %s does not exist in account %s" % (what, container, account),
                            "create it, or fix the container name in the URI (and account_name)")
    if isinstance(exc, aexc.ResourceModifiedError):
        return StorageError("%s: the blob changed while it was read" % what, "run it again")
    if isinstance(exc, aexc.ServiceRequestError):
        return StorageError("%s: cannot reach the Blob endpoint of account %s (%s)" % (what, account, text),
                            "check gpu_cluster_storage_options.account_name / endpoint_url and that the node can "
                            "reach it")
    if isinstance(exc, aexc.HttpResponseError):
        status = getattr(exc, "status_code", None)
        code = getattr(exc, "error_code", "") or ""
        code = str(getattr(code, "value", code))
        # a wrong key or SAS signature: "Server failed to authenticate the request" (AuthenticationFailed on Azure)
        if status == 403 and (code in ("AuthenticationFailed", "InvalidAuthenticationInfo")
                              or "failed to authenticate" in text):
            return StorageError("%s: the Azure credentials for account %s were rejected (%s)" % (what, account, code),
                                CREDENTIALS_HINT)
        if status == 403:
            return StorageError("%s: access to container %s denied (%s)" % (what, container, code or text),
                                "the identity needs Storage Blob Data Contributor (or a SAS token with read, "
                                "list, write and create permissions)")
        return StorageError("%s: %s %s" % (what, status, code or text))
    if isinstance(exc, aexc.AzureError):
        return StorageError("%s: %s" % (what, text))
    return exc


def _credential(opts):
    key, sas = opts.get("account_key"), opts.get("sas_token")
    if key and sas:
        raise StorageError("gpu_cluster_storage_options has both account_key and sas_token for az://",
                           "give one of them")
    if key:
        return AzureNamedKeyCredential(opts["account_name"], key)
    if sas:
        return AzureSasCredential(sas.lstrip("?"))
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise StorageError("az:// without account_key or sas_token uses the node's managed identity, which needs "
                           "azure-identity (%s)" % exc, "run the dataset role's client.yml on the node")
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


class AzureStore(Store):
    scheme = "az"

    def __init__(self, bucket, options=None, max_concurrency=4):
        super().__init__(bucket, options)
        if not HAS_AZURE:
            raise StorageError("azure-storage-blob is not installed for %s (%s)" % (_python(), AZURE_IMPORT_ERROR),
                               "run the dataset role's client.yml on the node with an az:// URI in use (it adds "
                               "azure-storage-blob and azure-identity to the client's venv), or pip install them")
        opts = dict((k, v) for k, v in self.options.items() if v not in (None, ""))
        self.account = opts.get("account_name")
        if not self.account:
            raise StorageError("az://%s needs the storage account: gpu_cluster_storage_options.account_name" % bucket,
                               "set account_name (and endpoint_url for Azurite or a private endpoint)")
        self.endpoint = (opts.get("endpoint_url") or "https://%s.blob.core.windows.net" % self.account).rstrip("/")
        self.max_concurrency = max_concurrency
        self.client = ContainerClient(self.endpoint, bucket, credential=_credential(opts),
                                      retry_policy=ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3),
                                      connection_timeout=10, read_timeout=120)
        self._listed = {}  # key -> (etag, Content-MD5 or None) as listed

    def close(self):
        self.client.close()

    def _call(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # classify() passes through what is not a storage failure
            raise classify(exc, what, self.bucket, self.account)

    def check(self):
        # one page of one name: what the sync needs anyway (list), and what a container SAS allows
        what = "checking az://%s (account %s)" % (self.bucket, self.account)
        # (one retry: an endpoint that refuses connections is named in seconds, not after the transfers' backoff)
        self._call(what, lambda: list(next(iter(self.client.list_blob_names(results_per_page=1, retry_total=1).by_page()), [])))

    def list(self, prefix):
        out = []

        def collect():
            for blob in self.client.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
                md5 = blob.content_settings.content_md5 if blob.content_settings else None
                sha = (blob.metadata or {}).get(SHA256_META)
                self._listed[blob.name] = (blob.etag, bytes(md5) if md5 else None, sha)
                out.append(ObjectInfo(blob.name, blob.size, blob.etag, sha))
        self._call("listing %s" % self.uri(prefix), collect)
        return out

    def download(self, key, path, size=None):
        what = "downloading %s" % self.uri(key)
        blob = self.client.get_blob_client(key)
        listed = self._listed.get(key)
        if listed is None:
            props = self._call(what, blob.get_blob_properties)
            md5 = props.content_settings.content_md5 if props.content_settings else None
            listed = (props.etag, bytes(md5) if md5 else None, (props.metadata or {}).get(SHA256_META))
            size = props.size if size is None else size
        etag, content_md5, sha256 = listed
        sha, md5, written = hashlib.sha256(), hashlib.md5(), 0
        try:
            # pinned to the listed ETag; without a Content-MD5, each range is checked against the service's MD5 of it
            stream = blob.download_blob(etag=etag, match_condition=MatchConditions.IfNotModified,
                                        validate_content=content_md5 is None)
            with open(path, "wb") as handle:
                for block in stream.chunks():
                    sha.update(block)
                    md5.update(block)
                    written += len(block)
                    handle.write(block)
        except Exception as exc:  # a connection that breaks mid-body, a range whose MD5 differs: classified
            raise classify(exc, what, self.bucket, self.account)
        info = ObjectInfo(key, size if size is not None else written, etag, sha256)
        if content_md5 is not None:
            ok = md5.digest() == content_md5
            service = {"ok": ok, "reason": "Content-MD5" if ok else "md5 %s, the blob's Content-MD5 is %s" % (
                md5.hexdigest(), content_md5.hex())}
        else:
            service = {"ok": True, "reason": "the MD5 of each range (the blob has no Content-MD5)"}
        return info, {"sha256": sha.hexdigest(), "md5": md5.hexdigest(), "service": service}

    def upload(self, path, key, sha256):
        what = "uploading %s" % self.uri(key)
        md5 = hashlib.md5()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(READ_SIZE), b""):
                md5.update(block)
        blob = self.client.get_blob_client(key)
        with open(path, "rb") as handle:
            # Content-MD5 travels with the blob also when the SDK writes it in blocks (Put Block List)
            got = self._call(what, blob.upload_blob, handle, overwrite=True, metadata={SHA256_META: sha256},
                             content_settings=ContentSettings(content_md5=bytearray(md5.digest())),
                             max_concurrency=self.max_concurrency)
        return ObjectInfo(key, os.path.getsize(path), got.get("etag"), sha256)

    def delete(self, key):
        try:
            self.client.delete_blob(key)
        except aexc.ResourceNotFoundError:
            pass
        except Exception as exc:
            raise classify(exc, "deleting %s" % self.uri(key), self.bucket, self.account)


def _python():
    import sys
    return sys.executable
