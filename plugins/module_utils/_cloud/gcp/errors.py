# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How Compute Engine's failures map onto the collection's error classes: classified once, here.

Two shapes of failure reach us: an HTTP error answer (``{"error": {"code", "message", "errors": [{"reason"}]}}``)
and an Operation that ends ``DONE`` with ``error.errors[]`` (``code`` such as ``ZONE_RESOURCE_POOL_EXHAUSTED``).
"""

from __future__ import annotations

import re

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CapacityError, CloudError, ConfigError, NotFoundError, QuotaError, TransientError)

# Operation error codes meaning "no capacity for this shape in this zone now": another zone may have it.
CAPACITY_CODES = frozenset((
    "ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "RESOURCE_POOL_EXHAUSTED",
    "STOCKOUT", "VM_MIN_COUNT_NOT_REACHED", "RESOURCE_AVAILABILITY_EXHAUSTED", "ZONE_RESOURCE_EXHAUSTED",
))
QUOTA_CODES = frozenset(("QUOTA_EXCEEDED", "quotaExceeded", "QUOTA_LIMIT_EXCEEDED"))
# how a launch into a SPECIFIC_RESERVATION without enough free instances is refused: by its message (the code is
# not one of the stockout codes)
RESERVATION_FULL_RE = re.compile(r"(?i)reservations? .*do(es)? not have (enough )?available resources")


def reservation_full(item):
    return bool(RESERVATION_FULL_RE.search((item or {}).get("message") or ""))


TRANSIENT_REASONS = frozenset((
    "rateLimitExceeded", "userRateLimitExceeded", "backendError", "internalError", "RESOURCE_OPERATION_RATE_EXCEEDED",
    "resourceNotReady",
))
AUTH_REASONS = frozenset(("authError", "forbidden", "accessNotConfigured", "SERVICE_DISABLED", "insufficientPermissions"))
CONNECTION_ERRORS = frozenset(("ConnectionError", "Timeout", "ChunkedEncodingError", "TransportError", "SSLError"))
CREDENTIALS_HINT = ("Give a service-account key file (credentials_file, GCP_SERVICE_ACCOUNT_FILE or "
                    "GOOGLE_APPLICATION_CREDENTIALS) or Application Default Credentials (gcloud auth "
                    "application-default login, or the VM's service account)")


class HttpError(Exception):
    """A non-2xx answer of the Compute API: ``status``, its JSON ``error`` object and the request's ``what``."""

    def __init__(self, status, error, what=""):
        self.status = status
        self.error = error if isinstance(error, dict) else {"message": str(error or "")}
        self.what = what
        super(HttpError, self).__init__("%s: HTTP %s %s" % (what, status, self.error.get("message")))

    @property
    def reasons(self):
        return [e.get("reason") for e in self.error.get("errors") or [] if isinstance(e, dict)]


def quota_details(item):
    """``(metric, region or '', limit or None)`` of an operation error item's ``errorDetails.quotaInfo``."""
    for detail in item.get("errorDetails") or []:
        info = (detail or {}).get("quotaInfo")
        if info:
            dims = info.get("dimensions") or {}
            return info.get("metricName") or info.get("limitName") or "", dims.get("region") or "", info.get("limit")
    return "", "", None


def _quota_error(code, message, metric, region, limit, ctx):
    need = ""
    if ctx.get("count"):
        need = " for %d x %s" % (ctx["count"], ctx.get("machine_type") or "the request")
    limit_text = "" if limit is None else " (limit %s)" % limit
    return QuotaError(
        "Compute Engine quota %s in %s is too low%s%s" % (metric or "(unnamed)", region or ctx.get("region") or
                                                          "the region", need, limit_text),
        hint="Request an increase of %s in IAM & Admin > Quotas for the project, or lower count. Another zone of "
             "the region does not help. Compute Engine said: %s" % (metric or "the quota", message),
        code=code)


def classify_operation(op, context=None):
    """The :class:`CloudError` of an Operation that ended ``DONE`` with an ``error``; ``None`` when it has none."""
    ctx = context or {}
    items = ((op or {}).get("error") or {}).get("errors") or []
    if not items:
        if (op or {}).get("httpErrorStatusCode", 200) >= 400:
            items = [{"code": op.get("httpErrorMessage") or "ERROR", "message": op.get("statusMessage") or ""}]
        else:
            return None
    # a capacity error among several decides (a bulkInsert reports one item per zone/instance tried)
    first = items[0]
    for item in items:
        if item.get("code") in CAPACITY_CODES or reservation_full(item):
            first = item
            break
    code = first.get("code") or "ERROR"
    if reservation_full(first):
        # a specific reservation with too few free instances: another placement (outside it) may take the nodes
        return CapacityError("reservation full for %s in %s: %s"
                             % (ctx.get("machine_type") or "the request", ctx.get("zone") or "this zone",
                                first.get("message")), code=code)
    message = "; ".join(sorted(set(i.get("message") or i.get("code") or "" for i in items)))
    what = ctx.get("what") or "the operation %s" % (op.get("operationType") or "")
    if code in CAPACITY_CODES:
        return CapacityError("no Compute Engine capacity for %s in %s: %s"
                             % (ctx.get("machine_type") or "the request", ctx.get("zone") or op.get("zone", "").rsplit(
                                 "/", 1)[-1] or "this zone", message), code=code)
    if code in QUOTA_CODES:
        metric, region, limit = quota_details(first)
        return _quota_error(code, message, metric, region, limit, ctx)
    if code in ("RESOURCE_NOT_FOUND", "NOT_FOUND"):
        return NotFoundError("%s failed: %s" % (what, message), code=code)
    if code in TRANSIENT_REASONS or code in ("INTERNAL_ERROR", "SERVICE_UNAVAILABLE"):
        # the operation itself failed: retrying the same requestId returns the same failed operation
        return CloudError("%s failed inside Compute Engine: %s" % (what, message), code=code,
                          hint="Run again; nothing of this call was kept")
    return ConfigError("%s failed: %s" % (what, message), code=code)


def classify(exc, context=None):
    """Turn an exception of a Compute API call into a :class:`CloudError` (``None``: not ours to classify)."""
    ctx = context or {}
    if isinstance(exc, CloudError):
        return exc
    names = set(cls.__name__ for cls in type(exc).__mro__)
    if isinstance(exc, HttpError):
        return _classify_http(exc, ctx)
    if "RefreshError" in names:
        return ConfigError("Google refused the credentials: %s" % exc, hint=CREDENTIALS_HINT, code="RefreshError")
    if "DefaultCredentialsError" in names:
        return ConfigError("no Google credentials found: %s" % exc, hint=CREDENTIALS_HINT,
                           code="DefaultCredentialsError")
    if names & CONNECTION_ERRORS:
        return TransientError("could not talk to the Compute API: %s" % exc,
                              hint="Check endpoint_url and the network path to compute.googleapis.com",
                              code=type(exc).__name__)
    return None


def _classify_http(exc, ctx):
    status, err, reasons = exc.status, exc.error, exc.reasons
    message = err.get("message") or "HTTP %s" % status
    code = (reasons[0] if reasons else None) or err.get("status") or str(status)
    if status == 429 or set(reasons) & TRANSIENT_REASONS or status >= 500:
        return TransientError("Compute Engine is busy or failing (%s): %s" % (exc.what, message), code=code)
    if "quotaExceeded" in reasons or (status == 403 and "Quota" in message):
        return _quota_error("QUOTA_EXCEEDED", message, "", "", None, ctx)
    if status == 404:
        return NotFoundError("%s does not exist: %s" % (ctx.get("resource") or exc.what, message), code=code)
    if status in (401, 403) or set(reasons) & AUTH_REASONS:
        return ConfigError("Compute Engine refused the credentials or the permission (%s): %s" % (exc.what, message),
                           hint=CREDENTIALS_HINT, code=code)
    if status == 409:
        return ConfigError("%s already exists: %s" % (ctx.get("resource") or exc.what, message), code="alreadyExists")
    return ConfigError("Compute Engine rejected %s: %s" % (exc.what, message), code=code)
