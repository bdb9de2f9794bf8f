"""torchrun_report_uri: where the run directory goes, and a bad URI refused with the other settings."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.plan import check_storage_uris
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.publish import publish_run_dir, \
    report_destination


def test_destination_is_the_run_id_under_the_uri():
    assert report_destination("s3://reports/team/", "r1") == "s3://reports/team/r1/"
    assert report_destination(" s3://reports ", "r1") == "s3://reports/r1/"


def test_a_bad_report_uri_is_refused_before_anything_starts():
    errors = check_storage_uris({"report_uri": "ftp://reports/x"})
    assert len(errors) == 1 and errors[0].startswith("torchrun_report_uri: "), errors
    assert check_storage_uris({"report_uri": "s3://reports/x"}) == []
    assert check_storage_uris({"report_uri": ""}) == []


def test_unknown_storage_options_are_an_error_not_an_exception(tmp_path):
    out = publish_run_dir(str(tmp_path), "s3://reports/x", "r1", {"endpoint": "http://127.0.0.1:1"})
    assert out["uri"] == "s3://reports/x/r1/" and out["files"] == 0
    assert "unknown storage options: endpoint" in out["error"]
