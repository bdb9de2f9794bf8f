# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every object store offers the sync code: list, download, upload (with a sha256), delete, check.

``open_store(uri, options)`` picks the implementation by the URI's scheme: ``s3://BUCKET/PREFIX`` (s3.py),
``gs://BUCKET/PREFIX`` (gcs.py, Google Cloud Storage) and ``az://CONTAINER/PREFIX`` (azblob.py, Azure Blob Storage;
the storage account is the option ``account_name``, a connection setting like ``endpoint_url``). Each store's
client library is imported by its own file, guarded: a node needs only the libraries of the schemes it uses.
"""

from __future__ import annotations

import abc
import collections
import re

SUPPORTED = ("s3", "gs", "az")
NAMES = {"s3": "S3", "gs": "Google Cloud Storage", "az": "Azure Blob Storage"}
FORMS = "s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX"
# S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
# what each scheme's first URI part must look like, and how to say so
NAME_RULES = {
    "s3": (BUCKET_RE, "bucket", "3-63 lowercase letters, digits, dots and hyphens"),
    # Cloud Storage: 3-63 (dotted names up to 222) lowercase letters, digits, '-', '_' and '.'
    "gs": (re.compile(r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$"), "bucket",
           "3-63 lowercase letters, digits, hyphens, underscores and dots"),
    # Blob containers: 3-63 lowercase letters, digits and single hyphens, starting with a letter or digit
    "az": (re.compile(r"^[a-z0-9](?!.*--)[a-z0-9\-]{1,61}[a-z0-9]$"), "container",
           "3-63 lowercase letters, digits and single hyphens; the storage account is storage_options.account_name"),
}
# the options of every store, one dict (gpu_cluster_storage_options): each store reads its own and ignores the others'
S3_OPTION_KEYS = ("endpoint_url", "region", "access_key", "secret_key", "session_token")
GS_OPTION_KEYS = ("endpoint_url", "credentials", "anonymous")
AZ_OPTION_KEYS = ("endpoint_url", "account_name", "account_key", "sas_token")
OPTION_KEYS = S3_OPTION_KEYS + GS_OPTION_KEYS[1:] + AZ_OPTION_KEYS[1:]
SECRET_OPTION_KEYS = ("access_key", "secret_key", "session_token", "credentials", "account_key", "sas_token")


class StorageError(Exception):
    """A failure the user can act on: ``msg`` says what failed, ``hint`` what to do about it."""

    def __init__(self, msg, hint=None):
        super().__init__(msg)
        self.msg = msg
        self.hint = hint

    def __str__(self):
        return "%s (%s)" % (self.msg, self.hint) if self.hint else self.msg


class ObjectInfo(collections.namedtuple("ObjectInfo", "key size etag sha256")):
    """One object: its full key, size in bytes, ETag (quotes stripped) and the sha256 it was uploaded with."""

    __slots__ = ()

    def __new__(cls, key, size, etag, sha256=None):
        return super().__new__(cls, key, int(size), (etag or "").strip('"'), sha256 or None)


def parse_uri(uri):
    """``s3://bucket/some/prefix`` -> ``("s3", "bucket", "some/prefix/")``; the prefix is a directory ('' or ends in /).

    The same for ``gs://BUCKET/PREFIX`` and ``az://CONTAINER/PREFIX`` (the bucket part is the container)."""
    if not isinstance(uri, str) or "://" not in uri:
        raise StorageError("%r is not an object storage URI" % (uri,), "write it as " + FORMS)
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    if scheme not in SUPPORTED:
        raise StorageError("%r: the scheme %r is not an object storage scheme" % (uri, scheme),
                           "write it as " + FORMS)
    bucket, _sep, prefix = rest.partition("/")
    pattern, what, rule = NAME_RULES[scheme]
    if not bucket:
        raise StorageError("%r names no %s" % (uri, what), "write it as %s://%s/PREFIX" % (scheme, what.upper()))
    if not pattern.fullmatch(bucket) or ".." in bucket:
        raise StorageError("%r: %r is not a valid %s name (%s)" % (uri, bucket, what, NAMES[scheme]), rule)
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise StorageError("%r: the prefix %r has empty, '.' or '..' parts" % (uri, prefix))
    return scheme, bucket, prefix + "/" if prefix else ""


class Store(abc.ABC):
    """One bucket of one object store. Keys are full keys (prefix included)."""

    scheme = None

    def __init__(self, bucket, options=None):
        self.bucket = bucket
        self.options = dict(options or {})

    def uri(self, key=""):
        return "%s://%s/%s" % (self.scheme, self.bucket, key)

    @abc.abstractmethod
    def check(self):
        """Raise StorageError (with a hint) unless the bucket is reachable with these credentials."""

    @abc.abstractmethod
    def list(self, prefix):
        """Every object under ``prefix``: a list of ObjectInfo (sha256 None when the listing does not carry it)."""

    @abc.abstractmethod
    def download(self, key, path, size=None):
        """Write the object to ``path``; returns ``(info, digests)``: its ObjectInfo as read (with the sha256 it was
        uploaded with) and, when the store hashed the bytes as it wrote them, ``{"sha256": hex, "md5": hex}`` of
        what it wrote (else None: the caller reads the file again). ``size``: what the listing said, if known."""

    @abc.abstractmethod
    def upload(self, path, key, sha256):
        """Store the file at ``path`` as ``key`` with ``sha256`` as metadata; returns its ObjectInfo."""

    @abc.abstractmethod
    def delete(self, key):
        """Remove the object (no error when it is not there)."""


def open_store(uri, options=None):
    """The Store for ``uri`` and the prefix inside it: ``(store, prefix)``.

    ``options``: gpu_cluster_storage_options; each store takes its own keys (unset or empty ones: the node's own
    identity) and ignores the other stores' keys, so one dict can serve a cluster whose URIs use several stores."""
    scheme, bucket, prefix = parse_uri(uri)
    unknown = sorted(set(options or {}) - set(OPTION_KEYS))
    if unknown:
        raise StorageError("unknown storage options: %s" % ", ".join(unknown),
                           "gpu_cluster_storage_options takes %s" % ", ".join(OPTION_KEYS))
    own = {"s3": S3_OPTION_KEYS, "gs": GS_OPTION_KEYS, "az": AZ_OPTION_KEYS}[scheme]
    options = dict((k, v) for k, v in (options or {}).items() if k in own and v not in (None, ""))
    if scheme == "s3":
        from .s3 import S3Store
        return S3Store(bucket, options), prefix
    if scheme == "gs":
        from .gcs import GCSStore
        return GCSStore(bucket, options), prefix
    from .azblob import AzureStore
    return AzureStore(bucket, options), prefix
