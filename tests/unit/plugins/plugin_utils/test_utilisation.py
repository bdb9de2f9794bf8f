"""The run report's hardware panels: queries for a window, Prometheus' answers shaped per node and clipped to
the run's own window, summary entries ("no GPU" where there is none), and the panels drawn."""

from __future__ import annotations

import io
import json
import urllib.parse

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import utilisation as u

START, END = 1000.0, 1060.0


def answer(series):
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"node": node}, "values": [[t, str(v)] for t, v in points]} for node, points in series.items()]}}


def test_queries_cover_the_window_with_a_rate_over_several_scrapes():
    q = u.queries(START, END, scrape_interval=5)
    assert sorted(q) == ["cpu", "gpu", "memory"]
    assert q["cpu"]["start"] == "1000.000" and q["cpu"]["end"] == "1060.000" and q["cpu"]["step"] == "1"
    assert 'rate(node_cpu_seconds_total{job="node",mode="idle"}[12s])' in q["cpu"]["query"]
    assert q["gpu"]["query"] == 'avg by (node) (DCGM_FI_DEV_GPU_UTIL{job="dcgm"})'
    # a day-long run stays under MAX_POINTS points
    step, window = u.window_step(0, 86400, 10)
    assert 86400 / step <= u.MAX_POINTS and window >= 2 * step
    listed = u.query_list(START, END, "5s")
    assert [item["key"] for item in listed] == ["cpu", "memory", "gpu"]
    assert urllib.parse.parse_qs(listed[0]["query_string"])["query"][0] == q["cpu"]["query"]


@pytest.mark.parametrize("text, seconds", [("10s", 10), ("1m", 60), ("1m30s", 90), (15, 15), ("500ms", 0.5)])
def test_durations(text, seconds):
    assert u.duration_seconds(text) == seconds


def test_a_bad_duration_is_named():
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        u.duration_seconds("10 seconds")


def test_shape_keeps_the_runs_window_only_and_says_no_gpu():
    raw = {"cpu": answer({"n-1": [(990, 5), (1000, 50), (1030, 90), (1060, 70), (1070, 3)],
                          "n-0": [(1000, 20), (1030, 40)]}),
           "memory": answer({"n-0": [(1000, 30), (1060, 32)], "n-1": [(1000, 10), (1060, 11)]}),
           "gpu": answer({})}
    shaped = u.shape(raw, START, END, nodes=["n-0", "n-1"])
    assert shaped["window"] == [START, END]
    cpu = shaped["panels"]["cpu"]
    assert list(cpu["nodes"]) == ["n-0", "n-1"]  # in the order given (ranks)
    assert cpu["nodes"]["n-1"] == {"t": [0.0, 30.0, 60.0], "v": [50.0, 90.0, 70.0], "mean": 70.0, "max": 90.0}
    assert shaped["panels"]["gpu"]["status"] == "empty" and shaped["panels"]["gpu"]["missing"] == ["n-0", "n-1"]
    entries = u.summary_entries(shaped)
    assert entries["n-0"] == {"cpu_mean": 30.0, "cpu_max": 40.0, "memory_mean": 31.0, "memory_max": 32.0,
                              "gpu": "no GPU"}
    assert u.summary_line(shaped) == ("utilisation (mean over the run): n-0 CPU 30% mem 31% no GPU; "
                                      "n-1 CPU 70% mem 10% no GPU")


def test_a_failed_query_is_an_error_not_no_gpu():
    raw = {"cpu": {"status": "error", "error": "connection refused"}, "memory": answer({}), "gpu": None}
    shaped = u.shape(raw, START, END, nodes=["n-0"])
    assert shaped["panels"]["cpu"]["status"] == "error" and shaped["panels"]["gpu"]["status"] == "error"
    assert "gpu" not in u.summary_entries(shaped).get("n-0", {})
    assert u.summary_line(shaped) == "utilisation: not available (connection refused; not queried)"


def test_gpu_series_are_drawn_per_node(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    raw = {"cpu": answer({"n-0": [(1000, 20), (1030, 40)]}), "memory": answer({"n-0": [(1000, 30)]}),
           "gpu": answer({"n-0": [(1000, 97), (1030, 99)]})}
    shaped = u.shape(raw, START, END, nodes=["n-0"])
    fig, axes = plt.subplots(3, 1)
    u.draw(axes, shaped)
    assert [len(ax.lines) for ax in axes] == [1, 1, 1]
    assert axes[2].get_legend().get_texts()[0].get_text() == "n-0 (mean 98%)"
    # without a GPU the panel says so and draws no line
    shaped["panels"]["gpu"] = u.shape({"gpu": answer({})}, START, END, ["n-0"])["panels"]["gpu"]
    fig, axes = plt.subplots(3, 1)
    u.draw(axes, shaped)
    assert len(axes[2].lines) == 0 and [t.get_text() for t in axes[2].texts] == ["no GPU"]
    fig.savefig(str(tmp_path / "p.png"))
    plt.close("all")


def test_fetch_asks_every_panel_in_one_query_and_parts_the_answer():
    asked = []
    # Prometheus' answer to the combined query: each series keeps its node and gets the panel label; no GPU (no DCGM
    # series) leaves the gpu side of the "or" empty
    combined = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"node": "n-0", "aiinfra_panel": "cpu"}, "values": [[1000, "12.5"], [1001, "13"]]},
        {"metric": {"node": "n-1", "aiinfra_panel": "cpu"}, "values": [[1000, "50"]]},
        {"metric": {"node": "n-0", "aiinfra_panel": "memory"}, "values": [[1000, "40"]]}]}}

    def opener(url, timeout):
        asked.append(url)
        return io.BytesIO(json.dumps(combined).encode())

    raw = u.fetch("http://127.0.0.1:9/", START, END, 5, opener=opener)
    assert len(asked) == 1 and asked[0].startswith("http://127.0.0.1:9/api/v1/query_range?query=")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(asked[0]).query)["query"][0]
    for key, title, promql, unit in u.PANELS:
        assert 'label_replace(%s, "aiinfra_panel", "%s", "", "")' % (promql.format(w="12s"), key) in query
    assert query.count(" or ") == 2
    assert sorted(raw) == ["cpu", "gpu", "memory"] and all(a["status"] == "success" for a in raw.values())
    assert [s["metric"] for s in raw["cpu"]["data"]["result"]] == [{"node": "n-0"}, {"node": "n-1"}]
    assert raw["gpu"]["data"]["result"] == []
    shaped = u.shape(raw, START, END, ["n-0", "n-1"])
    assert shaped == u.shape({"all": combined}, START, END, ["n-0", "n-1"])  # what the role hands the report
    assert shaped["panels"]["cpu"]["nodes"]["n-1"]["mean"] == 50.0
    assert shaped["panels"]["memory"]["missing"] == ["n-1"] and shaped["panels"]["gpu"]["status"] == "empty"

    def refused(url, timeout):
        raise OSError("connection refused")
    raw = u.fetch("http://127.0.0.1:9/", START, END, 5, opener=refused)
    assert raw == dict((key, {"status": "error", "error": "connection refused"}) for key in ("cpu", "memory", "gpu"))
    assert [item["key"] for item in u.query_list(START, END, "5s", combined=True)] == ["all"]
