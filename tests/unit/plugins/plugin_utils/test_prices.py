"""data/prices.yml and the cost arithmetic: prices with a date and source, local costs 0, an unknown type or
market is "price unknown", node-hours and cost from launch (or a run's start) to an end."""

from __future__ import annotations

import datetime

import pytest
import yaml

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import prices

NAMED_TYPES = {"aws": ["p4d.24xlarge", "p5.48xlarge"], "gcp": ["a2-highgpu-1g", "g2-standard-4", "n1-standard-8"]}


def test_every_price_has_a_date_and_a_source_and_the_named_types_are_there():
    data = prices.load()
    for cloud, table in data["clouds"].items():
        for name, entry in list((table.get("types") or {}).items()) + [("default", table.get("default"))]:
            if entry is None:
                continue
            datetime.date.fromisoformat(entry["date"])
            assert entry["source"].strip(), (cloud, name)
            assert "on_demand" in entry and "spot" in entry, (cloud, name)
    for cloud, names in NAMED_TYPES.items():  # the inventories and the instance module's docs
        for name in names:
            assert prices.price_for(cloud, name)["hourly"] > 0.1, (cloud, name)
    # not recorded yet: said, not guessed
    assert prices.price_for("gcp", "a3-highgpu-8g")["reason"] == "a3-highgpu-8g is not in data/prices.yml"


def test_local_costs_nothing():
    price = prices.price_for("local", "")
    assert price["hourly"] == 0.0 and price["source"].startswith("local containers")
    nodes = prices.price_nodes([{"name": "demo-0", "instance_type": "", "launch_time": "2026-12-01T00:00:00Z"}],
                               "local")
    result = prices.cost(nodes, end=prices.parse_time("2026-12-01T02:00:00Z"))
    assert result["cost"] == 0.0 and result["node_hours"] == 2.0 and result["known"]
    assert result["text"] == "$0.00 (2.00 node-hours; 1 x local node on-demand at $0.00/h)"


def test_unknown_type_or_market_says_price_unknown():
    assert prices.price_for("aws", "x9.huge")["hourly"] is None
    assert prices.price_for("aws", "x9.huge")["reason"] == "x9.huge is not in data/prices.yml"
    spot = prices.price_for("aws", "p4d.24xlarge", "spot")
    assert spot["hourly"] is None and spot["reason"] == "no spot price for p4d.24xlarge in data/prices.yml"
    assert prices.price_for("gcp-unknown", "a")["reason"] == "no prices for cloud gcp-unknown"
    nodes = prices.price_nodes([{"name": "n-0", "instance_type": "p4d.24xlarge", "launch_time": 0},
                                {"name": "n-1", "instance_type": "x9.huge", "launch_time": 0}], "aws")
    result = prices.cost(nodes, end=3600)
    assert result["cost"] is None and not result["known"] and result["unknown"] == ["n-1"]
    assert result["text"] == "price unknown (2.00 node-hours; n-1: x9.huge is not in data/prices.yml)"
    assert result["per_node"][0]["cost"] == pytest.approx(21.96)


def test_cost_over_a_window_counts_each_node_from_its_launch_or_the_start():
    p4d = float(prices.price_for("aws", "p4d.24xlarge")["hourly"])
    nodes = prices.price_nodes([
        {"name": "c-0", "instance_type": "p4d.24xlarge", "launch_time": "2026-12-01T00:00:00+00:00"},
        {"name": "c-1", "instance_type": "p4d.24xlarge", "launch_time": "2026-12-01T01:00:00+00:00"}], "aws")
    end = prices.parse_time("2026-12-01T03:00:00Z")
    whole = prices.cost(nodes, end)
    assert whole["node_hours"] == 5.0 and whole["cost"] == round(5 * p4d, 2)
    assert whole["text"] == "$%.2f (5.00 node-hours; 2 x p4d.24xlarge on-demand at $%.2f/h)" % (5 * p4d, p4d)
    run = prices.cost(nodes, end, start=prices.parse_time("2026-12-01T02:30:00Z"))
    assert run["node_hours"] == 1.0 and run["cost"] == round(p4d, 2)


def test_spot_nodes_take_the_spot_price(tmp_path):
    path = tmp_path / "prices.yml"
    path.write_text(yaml.safe_dump({"schema": 1, "currency": "USD", "clouds": {"aws": {"types": {
        "g9.xlarge": {"on_demand": 2.0, "spot": 0.5, "date": "2026-11-30", "source": "test"}}}}}))
    data = prices.load(str(path))
    by_flag = prices.price_nodes([{"name": "a", "instance_type": "g9.xlarge"}], "aws", spot=True, data=data)
    by_node = prices.price_nodes([{"name": "b", "instance_type": "g9.xlarge", "market": "spot"}], "aws", data=data)
    assert by_flag[0]["hourly_price"] == by_node[0]["hourly_price"] == 0.5
    assert prices.price_nodes([{"name": "c", "instance_type": "g9.xlarge", "market": "on_demand"}], "aws",
                              data=data)[0]["hourly_price"] == 2.0


def test_a_preempted_spot_node_and_its_on_demand_replacement_are_counted_apart(tmp_path):
    path = tmp_path / "prices.yml"
    path.write_text(yaml.safe_dump({"schema": 1, "currency": "USD", "clouds": {"aws": {"types": {
        "g9.xlarge": {"on_demand": 2.0, "spot": 0.5, "date": "2026-11-30", "source": "test"}}}}}))
    data = prices.load(str(path))
    nodes = prices.price_nodes([
        {"name": "c-0", "instance_type": "g9.xlarge", "market": "spot", "launch_time": "2026-12-01T00:00:00Z"},
        {"name": "c-1", "instance_type": "g9.xlarge", "market": "on_demand", "launch_time": "2026-12-01T02:00:00Z"}],
        "aws", data=data)
    result = prices.cost(nodes, prices.parse_time("2026-12-01T03:00:00Z"))
    assert result["node_hours_by_market"] == {"on_demand": 1.0, "spot": 3.0} and result["cost"] == 3.5
    assert result["text"] == ("$3.50 (4.00 node-hours: 1.00 on-demand, 3.00 spot; 1 x g9.xlarge on-demand at "
                              "$2.00/h, 1 x g9.xlarge spot at $0.50/h)")
    # no spot node: the text as it always was
    assert "on-demand, " not in prices.cost(nodes[1:], prices.parse_time("2026-12-01T03:00:00Z"))["text"]


@pytest.mark.parametrize("text, why", [
    ({"schema": 2, "clouds": {}}, "not a schema 1 price file"),
    ({"schema": 1, "clouds": {"aws": {"types": {"a": {"on_demand": 1.0, "date": "2026-01-01"}}}}}, "no date or source"),
    ({"schema": 1, "clouds": {"aws": {"types": {"a": {"on_demand": "1$", "date": "2026-01-01", "source": "s"}}}}},
     "is not a number"),
])
def test_a_bad_price_file_is_named(tmp_path, text, why):
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(text))
    with pytest.raises(prices.PriceDataError, match=why):
        prices.load(str(path))


@pytest.mark.parametrize("value, expected", [
    ("2026-12-01T00:40:01.123456789Z", 1796085601.123456),  # podman inspect's Created
    ("2026-12-01T00:40:01+00:00", 1796085601.0),  # EC2 LaunchTime, isoformat()
    ("2026-12-01 00:40:01.5 +0000 UTC", 1796085601.5),
    (1796085601, 1796085601.0),
    ("", None), ("yesterday", None),
])
def test_parse_time(value, expected):
    assert prices.parse_time(value) == (pytest.approx(expected) if expected else expected)
