"""The health gate's decisions (plugins/plugin_utils/health.py): the pair rounds, the expectations per instance type,
and which node is named from which figures."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import health


def ok_node(instance_type="", busbw=None, checks=None):
    checks = checks or [{"name": "driver", "status": "not applicable", "detail": "no NVIDIA GPU"}]
    return {"instance_type": instance_type,
            "node": {"status": "passed", "checks": checks, "local": {"busbw_gbs": busbw} if busbw is not None else {}}}


def pair_results(figures):
    """host -> node_health pairs result, from {(a, b): GB/s or an error string}, one round a pair."""
    out = {}
    for index, ((first, second), figure) in enumerate(sorted(figures.items())):
        for me, peer in ((first, second), (second, first)):
            row = {"round": index, "pair": [first, second], "peer": peer, "method": "gloo"}
            if isinstance(figure, str):
                row.update(busbw_gbs=None, error=figure)
            else:
                row["busbw_gbs"] = figure
            out.setdefault(me, {"method": "gloo", "pairs": []})["pairs"].append(row)
    return out


@pytest.mark.parametrize("count", [2, 3, 4, 5, 8, 9])
def test_schedule_covers_every_pair_once_and_no_node_twice_in_a_round(count):
    hosts = ["n%d" % i for i in range(count)]
    rounds = health.pair_schedule(hosts)
    assert len(rounds) == (count - 1 if count % 2 == 0 else count)
    seen = []
    for pairs in rounds:
        members = [h for pair in pairs for h in pair]
        assert len(members) == len(set(members))
        for pair in pairs:
            assert hosts.index(pair[0]) < hosts.index(pair[1])     # the lower node of a pair listens
        seen += [tuple(p) for p in pairs]
    assert sorted(seen) == sorted(itertools.combinations(hosts, 2))


def test_schedule_for_a_big_cluster_keeps_the_first_rounds():
    hosts = ["n%d" % i for i in range(16)]
    rounds = health.pair_schedule(hosts, max_rounds=3)
    assert len(rounds) == 3 and all(len(r) == 8 for r in rounds)
    partners = dict((h, set()) for h in hosts)
    for pairs in rounds:
        for a, b in pairs:
            partners[a].add(b)
            partners[b].add(a)
    assert all(len(p) == 3 for p in partners.values())
    assert health.pair_schedule(["only"]) == []


def test_expectations_from_the_data():
    p5 = health.expectations("p5.48xlarge")
    assert p5["known"] and p5["gpus"] == 8 and p5["gpu_model"] == "H100"
    assert p5["node_min_gbs"] == pytest.approx(450 * 0.8) and p5["pair_min_gbs"] == pytest.approx(46 * 0.7)
    t4 = health.expectations("Standard_NC4as_T4_v3")
    assert t4["gpus"] == 1 and t4["node_min_gbs"] is None
    local = health.expectations("")
    assert not local["known"] and local["pair_min_gbs"] is None and local["gpus"] == 0


def test_the_node_whose_pairs_are_all_slow_is_named_with_its_figure():
    # 3 CPU nodes, n2's link slowed: both its pairs are slow, n0 and n1 still have their fast pair
    nodes = dict((h, ok_node()) for h in ("n0", "n1", "n2"))
    pairs = pair_results({("n0", "n1"): 1.2, ("n0", "n2"): 0.006, ("n1", "n2"): 0.0055})
    result = health.verdict(nodes, pairs)
    assert result["failed"] == ["n2"] and not result["passed"]
    assert result["median_pair_gbs"] == pytest.approx(1.2)
    n2 = result["nodes"]["n2"]
    assert n2["best_pair_gbs"] == pytest.approx(0.006) and n2["best_peer"] == "n0"
    assert "every pair slow - best 0.006 GB/s, under 50% of the cluster's median 1.2 GB/s" in n2["reasons"][0]
    assert result["nodes"]["n0"]["status"] == "passed" and result["nodes"]["n0"]["best_pair_gbs"] == 1.2
    text = health.report_text(result, "c", "gloo")
    assert text.startswith("health of c: 3 node(s), FAILED: n2; 3 pair(s) (gloo), median best pair 1.2 GB/s")
    assert "n2  FAILED" in text and "best pair 0.006 GB/s (pairs: n0 0.006, n1 0.0055)" in text
    assert "not applicable: driver" in text
    summary = health.summary_entry(result)
    assert summary["nodes"]["n2"]["pairs"] == {"n0": 0.006, "n1": 0.0055} and summary["failed"] == ["n2"]


def test_the_sides_of_a_pair_agree_on_the_lower_figure_and_an_error_fails_the_pair():
    pairs = pair_results({("a", "b"): 2.0, ("a", "c"): 2.0, ("b", "c"): 2.0, ("c", "d"): "TimeoutError: peer",
                          ("a", "d"): "RuntimeError: x", ("b", "d"): "RuntimeError: y"})
    pairs["b"]["pairs"][0]["busbw_gbs"] = 1.5      # b saw a-b at 1.5
    rows = health.pair_figures(pairs)
    assert [r["busbw_gbs"] for r in rows if r["pair"] == ["a", "b"]] == [1.5]
    result = health.verdict(dict((h, ok_node()) for h in "abcd"), pairs)
    assert result["failed"] == ["d"]
    assert result["nodes"]["d"]["reasons"][0].startswith("no pair with another node completed (")


def test_all_fast_nothing_named_and_a_slow_link_between_two_good_nodes_names_neither():
    nodes = dict((h, ok_node()) for h in ("n0", "n1", "n2", "n3"))
    # only the n0-n1 link is slow: each still has fast pairs with n2 and n3
    pairs = pair_results({("n0", "n1"): 0.01, ("n0", "n2"): 1.0, ("n0", "n3"): 1.1, ("n1", "n2"): 0.9,
                          ("n1", "n3"): 1.0, ("n2", "n3"): 1.2})
    result = health.verdict(nodes, pairs)
    assert result["passed"] and result["failed"] == []


def test_instance_type_thresholds_and_failed_checks():
    bad_driver = [{"name": "driver", "status": "failed", "detail": "nvidia-smi failed (rc 9): NVIDIA-SMI has failed"}]
    nodes = {"g0": ok_node("p5.48xlarge", busbw=470.0, checks=[{"name": "driver", "status": "passed",
                                                                "detail": "ok"}]),
             "g1": ok_node("p5.48xlarge", busbw=300.0, checks=[{"name": "driver", "status": "passed", "detail": "ok"}]),
             "g2": ok_node("p5.48xlarge", checks=bad_driver)}
    pairs = pair_results({("g0", "g1"): 40.0, ("g0", "g2"): 41.0, ("g1", "g2"): 39.0})
    result = health.verdict(nodes, pairs)
    assert result["failed"] == ["g1", "g2"]
    assert result["nodes"]["g1"]["reasons"] == ["all-reduce across its GPUs 300 GB/s, under 360 GB/s (p5.48xlarge)"]
    assert result["nodes"]["g2"]["reasons"][0].startswith("driver: nvidia-smi failed")
    # between nodes under the type's figure (46 x 0.7 = 32.2 GB/s): the node is named even when all are slow
    slow = health.verdict(dict((h, ok_node("p5.48xlarge", 460.0)) for h in ("g0", "g1", "g2")),
                          pair_results({("g0", "g1"): 40.0, ("g0", "g2"): 10.0, ("g1", "g2"): 11.0}))
    assert slow["failed"] == ["g2"]
    assert "its best pair 11.0 GB/s, under 32.2 GB/s (p5.48xlarge)" in slow["nodes"]["g2"]["reasons"][0]


def test_two_nodes_relative_cannot_name_one_and_says_so():
    result = health.verdict({"a": ok_node(), "b": ok_node()}, pair_results({("a", "b"): 0.001}))
    assert result["passed"] and "cannot be told" in result["notes"][0]


def test_node_all_reduce_relative_to_the_median_without_a_known_type():
    nodes = {"a": ok_node("x1", 100.0), "b": ok_node("x1", 98.0), "c": ok_node("x1", 20.0)}
    result = health.verdict(nodes, {})
    assert result["failed"] == ["c"] and "under 50% of the cluster's median 98.0 GB/s" in result["nodes"]["c"]["reasons"][0]


def test_bad_data_is_refused(tmp_path):
    path = tmp_path / "health.yml"
    path.write_text("schema: 1\nnode_fail_below: 2\npair_fail_below: 0.5\nrelative_fail_below: 0.5\n"
                    "instance_types: {}\n")
    with pytest.raises(health.HealthError, match="node_fail_below"):
        health.load(str(path))


def test_a_node_that_does_not_answer_is_named():
    nodes = {"a": ok_node(), "b": ok_node(),
             "c": {"instance_type": "", "node": {"unreachable": True, "changed": False,
                                                 "msg": "Failed to connect to the host via ssh:\n  timed out"}}}
    result = health.verdict(nodes, pair_results({("a", "b"): 1.0}))
    assert result["failed"] == ["c"]
    assert result["nodes"]["c"]["reasons"] == ["does not answer over SSH (Failed to connect to the host via ssh: timed out)"]


def test_the_run_report_keeps_the_gate():
    from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.report import health_line
    before = health.summary_entry(health.verdict(
        dict((h, ok_node()) for h in ("n0", "n1", "n2")),
        pair_results({("n0", "n1"): 1.2, ("n0", "n2"): 0.006, ("n1", "n2"): 0.0055})))
    after = dict(health.summary_entry(health.verdict(
        dict((h, ok_node()) for h in ("n0", "n1", "n2")),
        pair_results({("n0", "n1"): 1.2, ("n0", "n2"): 1.1, ("n1", "n2"): 1.0}))), replaced=["n2"],
        before_replacement=before)
    assert before["failed"] == ["n2"] and before["nodes"]["n2"]["best_pair_gbs"] == 0.006
    assert health_line(after) == ("health gate: passed (best pair per node: n0 1.2 GB/s, n1 1.2 GB/s, n2 1.1 GB/s); "
                                  "replaced before the job: n2")
