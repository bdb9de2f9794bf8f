# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Google Cloud Storage (``gs://BUCKET/PREFIX``) with google-cloud-storage.

Options (``gpu_cluster_storage_options``): ``endpoint_url`` (an emulator, a private endpoint), ``credentials`` (the
content of a service-account key JSON, never logged) or ``anonymous: true`` (public buckets, emulators). With
neither, google.auth's default chain: on a GCE node the metadata server's service account.

Verification: every object uploaded here carries its sha256 as metadata (``x-goog-meta-sha256``); a download is
hashed as it is written (sha256, md5, crc32c) and compared with what the service keeps for the object, its
``md5Hash`` (objects written in one piece) and ``crc32c`` (every object, composite ones too), pinned to the
generation that was listed, so the bytes are never read twice.
"""

from __future__ import annotations

import base64
import hashlib
import json

from .base import ObjectInfo, Store, StorageError

try:
    import google.auth
    import google.auth.exceptions
    from google.api_core import exceptions as gexc
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    from google.oauth2 import service_account
    import google_crc32c
    import requests
    HAS_GCS = True
    GCS_IMPORT_ERROR = None
except ImportError as exc:  # the storage client venv has them when a gs:// URI is in use
    HAS_GCS = False
    GCS_IMPORT_ERROR = exc

MiB = 1024 * 1024
READ_SIZE = 1 * MiB
SHA256_META = "sha256"
SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]
CREDENTIALS_HINT = ("set gpu_cluster_storage_options.credentials to a service account key's JSON content (no_log), or "
                    "give the nodes a service account with access to the bucket (GCE: the instance's service account)")


def _retry(deadline):
    """google-api-core's own retry of transient errors, bounded: an unreachable endpoint fails in ``deadline`` s."""
    from google.cloud.storage.retry import DEFAULT_RETRY
    return DEFAULT_RETRY.with_timeout(deadline) if hasattr(DEFAULT_RETRY, "with_timeout") else \
        DEFAULT_RETRY.with_deadline(deadline)


def classify(exc, what, bucket, endpoint=None):
    """A StorageError with a hint for an exception of the Google libraries raised while doing ``what``."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
        return StorageError("%s: no Google credentials found (%s)" % (what, exc), CREDENTIALS_HINT)
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return StorageError("%s: the Google credentials were rejected (%s)" % (what, exc), CREDENTIALS_HINT)
    if isinstance(exc, (google.auth.exceptions.TransportError, requests.exceptions.ConnectionError,
                        requests.exceptions.Timeout, gexc.RetryError)):
        return StorageError("%s: cannot reach Cloud Storage%s (%s)" % (what, " at %s" % endpoint if endpoint else "",
                                                                       exc),
                            "check gpu_cluster_storage_options.endpoint_url and that the node can reach it")
    if isinstance(exc, gexc.NotFound):
        return StorageError("%s: bucket %s does not exist" % (what, bucket) if "/o/" not in str(exc) else
                            "%s: the object is gone (%s)" % (what, exc), "create it, or fix the bucket name in the URI")
    if isinstance(exc, gexc.Unauthorized):
        return StorageError("%s: the Google credentials were rejected (%s)" % (what, exc), CREDENTIALS_HINT)
    if isinstance(exc, gexc.Forbidden):
        return StorageError("%s: access to bucket %s denied (%s)" % (what, bucket, exc),
                            "the service account needs storage.objects.list, .get and .create on it "
                            "(roles/storage.objectAdmin, or objectViewer to read only)")
    if isinstance(exc, gexc.PreconditionFailed):
        return StorageError("%s: the object changed while it was read (%s)" % (what, exc), "run it again")
    if isinstance(exc, gexc.GoogleAPIError):
        return StorageError("%s: %s" % (what, exc))
    return exc


def _credentials(opts):
    """(credentials, project) from the options: anonymous, a service account key's content, or google.auth's chain."""
    anonymous = opts.get("anonymous")
    if isinstance(anonymous, str):
        anonymous = anonymous.strip().lower() in ("1", "true", "yes", "on")
    if anonymous and opts.get("credentials"):
        raise StorageError("gpu_cluster_storage_options has both credentials and anonymous: true for gs://",
                           "give one of them")
    if anonymous:
        return AnonymousCredentials(), "anonymous"
    info = opts.get("credentials")
    if info:
        if isinstance(info, str):
            try:
                info = json.loads(info)
            except ValueError as exc:
                raise StorageError("gpu_cluster_storage_options.credentials is not a service account key's JSON "
                                   "(%s)" % exc.__class__.__name__, CREDENTIALS_HINT)
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise StorageError("gpu_cluster_storage_options.credentials is not a service account key (its JSON has "
                               "no \"type\": \"service_account\")", CREDENTIALS_HINT)
        try:
            creds = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        except (ValueError, KeyError) as exc:
            # the message names the missing field, never the key's content
            raise StorageError("gpu_cluster_storage_options.credentials is not a usable service account key (%s)"
                               % exc.__class__.__name__, CREDENTIALS_HINT)
        return creds, info.get("project_id") or "-"
    try:
        creds, project = google.auth.default(scopes=SCOPES)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise classify(exc, "finding credentials for gs://", None)
    return creds, project or "-"


class _Hashing(object):
    """A file object for the download to write into: hashes the bytes on their way to the file."""

    def __init__(self, handle):
        self.handle = handle
        self.sha, self.md5, self.crc = hashlib.sha256(), hashlib.md5(), google_crc32c.Checksum()
        self.size = 0

    def write(self, block):
        self.sha.update(block)
        self.md5.update(block)
        self.crc.update(block)
        self.size += len(block)
        return self.handle.write(block)

    def flush(self):
        self.handle.flush()


def _listed(blob):
    """What a download needs of the listed object: its generation, md5Hash, crc32c and sha256 metadata."""
    return blob.generation, blob.md5_hash, blob.crc32c, (blob.metadata or {}).get(SHA256_META)


def _b64_hex(text):
    return base64.b64decode(text).hex() if text else None


class GCSStore(Store):
    scheme = "gs"

    def __init__(self, bucket, options=None, max_concurrency=10):
        super().__init__(bucket, options)
        if not HAS_GCS:
            raise StorageError("google-cloud-storage is not installed for %s (%s)" % (_python(), GCS_IMPORT_ERROR),
                               "run the dataset role's client.yml on the node with a gs:// URI in use (it adds "
                               "google-cloud-storage to the client's venv), or pip install google-cloud-storage")
        opts = dict((k, v) for k, v in self.options.items() if v not in (None, ""))
        self.endpoint = opts.get("endpoint_url")
        creds, project = _credentials(opts)
        client_options = {"api_endpoint": self.endpoint.rstrip("/")} if self.endpoint else None
        self.client = storage.Client(project=project, credentials=creds, client_options=client_options)
        adapter = requests.adapters.HTTPAdapter(pool_connections=max_concurrency, pool_maxsize=max_concurrency * 2)
        self.client._http.mount("https://", adapter)
        self.client._http.mount("http://", adapter)
        self._bucket = self.client.bucket(bucket)
        self._listed = {}  # key -> the object's resource as listed: its generation and checksums

    def close(self):
        pass

    def _call(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # classify() passes through what is not a storage failure
            raise classify(exc, what, self.bucket, self.endpoint)

    def check(self):
        # a one-object listing: what the sync needs anyway (storage.objects.list), unlike a bucket GET (buckets.get)
        what = "checking gs://%s" % self.bucket
        self._call(what, lambda: list(self.client.list_blobs(self.bucket, max_results=1, retry=_retry(6),
                                                             timeout=(10, 30))))

    def _info(self, blob):
        return ObjectInfo(blob.name, blob.size or 0, str(blob.generation), (blob.metadata or {}).get(SHA256_META))

    def list(self, prefix):
        out = []

        def collect():
            for blob in self.client.list_blobs(self.bucket, prefix=prefix, retry=_retry(60), timeout=(10, 60)):
                self._listed[blob.name] = _listed(blob)
                out.append(self._info(blob))
        self._call("listing %s" % self.uri(prefix), collect)
        return out

    def download(self, key, path, size=None):
        what = "downloading %s" % self.uri(key)
        listed = self._listed.get(key)
        if listed is None:
            blob = self._call(what, self._bucket.get_blob, key, retry=_retry(60))
            if blob is None:
                raise StorageError("%s: the object is gone" % what)
            listed = _listed(blob)
        else:
            blob = self._bucket.blob(key, generation=listed[0])
        generation, md5_b64, crc_b64, sha256 = listed
        try:
            with open(path, "wb") as handle:
                sink = _Hashing(handle)
                # pinned to the listed generation (its checksums are the ones compared); the library's own
                # checksum is off: the same comparison is made below with the listing's values
                blob.download_to_file(sink, if_generation_match=generation, checksum=None, retry=_retry(120),
                                      timeout=(10, 120))
        except Exception as exc:
            raise classify(exc, what, self.bucket, self.endpoint)
        # the size as the listing gave it (sync.verify compares the file's with it), the sha256 it was uploaded with
        info = ObjectInfo(key, size if size is not None else (blob.size if blob.size is not None else sink.size),
                          str(generation), sha256)
        checks = []
        if md5_b64:
            checks.append(("md5Hash", _b64_hex(md5_b64), sink.md5.hexdigest()))
        if crc_b64:
            checks.append(("crc32c", _b64_hex(crc_b64), sink.crc.digest().hex()))
        bad = [c for c in checks if c[1] != c[2]]
        if bad:
            service = {"ok": False, "reason": "%s %s, the service has %s" % (bad[0][0], bad[0][2], bad[0][1])}
        elif checks:
            service = {"ok": True, "reason": " and ".join(c[0] for c in checks)}
        else:
            service = {"ok": False, "reason": "Cloud Storage gives no md5Hash or crc32c for this object"}
        return info, {"sha256": sink.sha.hexdigest(), "md5": sink.md5.hexdigest(), "service": service}

    def upload(self, path, key, sha256):
        blob = self._bucket.blob(key)
        blob.metadata = {SHA256_META: sha256}
        # crc32c: the library sends the file's crc32c and the service refuses an upload whose bytes do not match
        self._call("uploading %s" % self.uri(key), blob.upload_from_filename, path, checksum="crc32c",
                   retry=_retry(300), timeout=(10, 300))
        return self._info(blob)

    def delete(self, key):
        try:
            self._bucket.blob(key).delete(retry=_retry(60))
        except gexc.NotFound:
            pass
        except Exception as exc:
            raise classify(exc, "deleting %s" % self.uri(key), self.bucket, self.endpoint)


def _python():
    import sys
    return sys.executable
