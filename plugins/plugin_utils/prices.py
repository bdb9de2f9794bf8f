# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What machines cost, from ``data/prices.yml``: a node's hourly price, node-hours and cost over a window.

Controller-only (the data file does not travel to the nodes with a module): the instance and instance_info
action plugins add each node's price to the module's result, the run report and teardown.yml multiply it
by measured uptime. A type or market without a recorded price is "price unknown", never a guess.
"""

from __future__ import annotations

import datetime
import os
import re

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import datafile

DATA_FILE = os.path.join(datafile.DATA_DIR, "prices.yml")
MARKETS = ("on_demand", "spot")


class PriceDataError(Exception):
    """The price file is missing or malformed."""


def _check(data, path):
    """Every price has a date and a source, and is a number >= 0 (or null: unknown)."""
    if not isinstance(data.get("clouds"), dict):
        raise PriceDataError("%s has no clouds" % path)
    for cloud, table in data["clouds"].items():
        entries = dict(table.get("types") or {})
        if "default" in table:
            entries["(default)"] = table["default"]
        for name, entry in entries.items():
            where = "%s: %s %s" % (path, cloud, name)
            if not isinstance(entry, dict) or not entry.get("date") or not entry.get("source"):
                raise PriceDataError("%s has no date or source" % where)
            for market in MARKETS:
                value = entry.get(market)
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                    raise PriceDataError("%s: %s price %r is not a number >= 0" % (where, market, value))


def load(path=None):
    """The price table (parsed once per path), checked: every price has a date and a source."""
    return datafile.load(path or DATA_FILE, "price", PriceDataError, _check)


def price_for(cloud, instance_type, market="on_demand", data=None):
    """{hourly, currency, market, date, source, region} for one machine; ``hourly`` is None when unknown
    (then ``reason`` says why)."""
    data = data if data is not None else load()
    market = market or "on_demand"
    out = {"cloud": cloud, "instance_type": instance_type or "", "market": market, "currency": data.get("currency", "USD"),
           "hourly": None}
    table = (data.get("clouds") or {}).get(cloud)
    if table is None:
        out["reason"] = "no prices for cloud %s" % cloud
        return out
    if table.get("region"):
        out["region"] = table["region"]
    entry = (table.get("types") or {}).get(instance_type) or table.get("default")
    if entry is None:
        out["reason"] = "%s is not in data/prices.yml" % (instance_type or "the instance type")
        return out
    out.update(date=entry["date"], source=" ".join(str(entry["source"]).split()))
    if entry.get(market) is None:
        out["reason"] = "no %s price for %s in data/prices.yml" % (market.replace("_", "-"), instance_type)
        return out
    out["hourly"] = float(entry[market])
    return out


def price_nodes(nodes, cloud, spot=False, data=None):
    """The nodes (dicts, as the instance module returns them) with ``hourly_price`` (None: unknown) and
    ``price`` (where the figure comes from) added."""
    out = []
    for node in nodes or []:
        market = node.get("market") or ("spot" if spot else "on_demand")
        price = price_for(cloud, node.get("instance_type"), market, data)
        out.append(dict(node, hourly_price=price["hourly"], price=price))
    return out


_FRACTION = re.compile(r"\.(\d{6})\d*")


def parse_time(value):
    """An ISO 8601 time (EC2's LaunchTime, podman's Created with nanoseconds) or a Unix time -> Unix time."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().replace("Z", "+00:00")
    text = _FRACTION.sub(lambda m: "." + m.group(1), text)
    text = re.sub(r"\s+([+-]\d{2}:?\d{2})(\s+\S+)?$", r"\1", text)  # "2026-12-01 00:40:01 +0000 UTC"
    try:
        parsed = datetime.datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def cost(nodes, end, start=None):
    """What ``nodes`` cost from ``start`` (default: each node's launch) to ``end`` (Unix times).

    Each node counts from the later of its launch and ``start``. Returns {node_hours, node_hours_by_market (spot
    and on-demand apart), cost (None when any node's price is unknown), currency, known, unknown (names of nodes
    without a price), per_node, text}.
    """
    per_node, total, hours, unknown, by_market = [], 0.0, 0.0, [], {}
    currency = "USD"
    for node in nodes or []:
        launched = parse_time(node.get("launch_time"))
        known = [x for x in (launched, start) if x is not None]
        begin = max(known) if known else None
        node_hours = max(0.0, (end - begin) / 3600.0) if begin is not None else None
        price = node.get("price") or {}
        currency = price.get("currency", currency)
        hourly = node.get("hourly_price")
        entry = {"name": node.get("name"), "instance_type": node.get("instance_type") or "%s node" % price.get("cloud", ""),
                 "market": price.get("market", ""), "hourly_price": hourly, "node_hours": node_hours,
                 "cost": None}
        if node_hours is not None:
            hours += node_hours
            market = entry["market"] or "on_demand"
            by_market[market] = by_market.get(market, 0.0) + node_hours
        if hourly is None or node_hours is None:
            unknown.append(node.get("name"))
            entry["reason"] = price.get("reason") if hourly is None else "launch time unknown"
        else:
            entry["cost"] = round(hourly * node_hours, 4)
            total += hourly * node_hours
        per_node.append(entry)
    result = {"node_hours": round(hours, 4),
              "node_hours_by_market": dict((k, round(v, 4)) for k, v in sorted(by_market.items())),
              "currency": currency, "known": not unknown, "unknown": unknown,
              "cost": round(total, 2) if not unknown else None, "per_node": per_node}
    result["text"] = cost_text(result)
    return result


def cost_text(result):
    """'$1.23 (4 node-hours; 2 x p4d.24xlarge on-demand at $21.96/h, price of 2025-06-05)' or 'price unknown ...'."""
    nodes = result.get("per_node") or []
    hours = "%.2f node-hours" % result["node_hours"]
    markets = result.get("node_hours_by_market") or {}
    if markets.get("spot"):
        # spot and on-demand apart: what a preempted spot node and its replacement cost
        hours += ": %s" % ", ".join("%.2f %s" % (v, k.replace("_", "-")) for k, v in sorted(markets.items()))
    if not result["known"]:
        reasons = sorted(set(n.get("reason") or "" for n in nodes if n["cost"] is None))
        return "price unknown (%s; %s: %s)" % (hours, ", ".join(str(n) for n in result["unknown"]),
                                               "; ".join(r for r in reasons if r))
    kinds = {}
    for node in nodes:
        key = (node["instance_type"] or "node", node["market"].replace("_", "-"), node["hourly_price"])
        kinds[key] = kinds.get(key, 0) + 1
    symbol = "$" if result["currency"] == "USD" else result["currency"] + " "
    parts = ["%d x %s %s at %s%s/h" % (count, kind, market, symbol, _money(hourly))
             for (kind, market, hourly), count in sorted(kinds.items())]
    return "%s%s (%s; %s)" % (symbol, _money(result["cost"]), hours, ", ".join(parts) or "no nodes")


def _money(value):
    return "%.2f" % value if value >= 0.01 or value == 0 else "%.4f" % value
