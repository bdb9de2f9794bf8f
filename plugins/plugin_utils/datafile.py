# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's data files (``data/*.yml``): where they are, read once per path, schema checked."""

from __future__ import annotations

import copy
import os

import yaml

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "data")

_CACHE = {}


def load(path, what, error, check=None):
    """A schema 1 data file as a fresh copy (parsed and checked once per path).

    ``what`` names it in messages ("compatibility", "price"); ``error`` is the exception class to raise;
    ``check(data, path)`` may raise it for content that is not right.
    """
    if path not in _CACHE:
        try:
            with open(path) as handle:
                data = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError) as exc:
            raise error("cannot read the %s data %s: %s" % (what, path, exc))
        if not isinstance(data, dict) or data.get("schema") != 1:
            raise error("%s is not a schema 1 %s file" % (path, what))
        if check:
            check(data, path)
        _CACHE[path] = data
    return copy.deepcopy(_CACHE[path])
