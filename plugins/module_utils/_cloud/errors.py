# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Classified cloud errors.

Every provider translates its SDK's failures into one of these classes exactly
once (in its ``classify`` function), so the module, the retry helper and the
capacity failover logic never look at a raw SDK error.
"""

from __future__ import annotations


class CloudError(Exception):
    """Base class: ``kind`` says what happened, ``hint`` what to do next."""

    kind = "error"
    retryable = False

    def __init__(self, message, hint=None, code=None):
        super(CloudError, self).__init__(message)
        self.message = message
        self.hint = hint
        self.code = code

    def __str__(self):
        text = self.message
        if self.code:
            text = "%s [%s]" % (text, self.code)
        if self.hint:
            text = "%s. %s" % (text.rstrip("."), self.hint)
        return text

    def to_dict(self):
        return {"kind": self.kind, "message": self.message, "hint": self.hint, "code": self.code}


class ConfigError(CloudError):
    """The request can never succeed as written (bad option, missing tool, unknown image)."""

    kind = "config"


class NotFoundError(CloudError):
    """A resource the request names does not exist."""

    kind = "not_found"


class CapacityError(CloudError):
    """The cloud has no capacity for this shape here, now. Another placement may."""

    kind = "capacity"


class QuotaError(CloudError):
    """An account limit. Retrying or moving does not help; raising the quota does."""

    kind = "quota"


class TransientError(CloudError):
    """Throttling, 5xx, timeouts: the same call may succeed if retried."""

    kind = "transient"
    retryable = True


class WaitTimeout(CloudError):
    """A wait ran past its deadline. Always fatal: a timeout never only warns."""

    kind = "timeout"


ERROR_KINDS = dict(
    (cls.kind, cls)
    for cls in (CloudError, ConfigError, NotFoundError, CapacityError, QuotaError, TransientError, WaitTimeout)
)
