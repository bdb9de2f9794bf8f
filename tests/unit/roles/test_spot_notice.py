"""The spot notice watcher (roles/gpu_cluster/files/aiinfra_spot_notice.py): each cloud's notice read from the
answers its metadata service gives (the shapes documented by AWS, Google and Azure), the local notice file, the
record the run's watch reads, and the push-now signal to the checkpoint uploaders."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SPEC = importlib.util.spec_from_file_location(
    "aiinfra_spot_notice", os.path.join(ROOT, "roles", "gpu_cluster", "files", "aiinfra_spot_notice.py"))
notice = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(notice)


class Metadata(object):
    """A metadata service: path -> (status, body); records what was asked, with which headers and method."""

    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def __call__(self, url, headers, timeout=2.0, method="GET"):
        path = url.split("://", 1)[1].split("/", 1)[1]
        self.asked.append((method, "/" + path, dict(headers)))
        return self.answers.get("/" + path, (404, ""))


def test_aws_asks_with_an_imdsv2_token_and_reads_the_instance_action():
    # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
    action = '{"action": "terminate", "time": "2026-12-05T10:02:00Z"}'
    md = Metadata({"/latest/api/token": (200, "TOKEN"), "/latest/meta-data/spot/instance-action": (200, action)})
    found = notice.aws_notice(get=md)
    assert found == {"detail": "spot instance-action terminate at 2026-12-05T10:02:00Z",
                     "action_time": "2026-12-05T10:02:00Z"}
    assert md.asked[0][0] == "PUT" and "X-aws-ec2-metadata-token-ttl-seconds" in md.asked[0][2]
    assert md.asked[1][2] == {"X-aws-ec2-metadata-token": "TOKEN"}


def test_aws_no_notice_is_a_404_and_no_metadata_service_is_no_notice():
    assert notice.aws_notice(get=Metadata({"/latest/api/token": (200, "TOKEN")})) is None
    assert notice.aws_notice(get=Metadata({})) is None
    assert notice.aws_notice(get=lambda *a, **k: (None, "timed out")) is None


def test_gcp_reads_instance_preempted_with_the_metadata_flavor_header():
    # https://cloud.google.com/compute/docs/instances/create-use-preemptible#detecting_if_an_instance_was_preempted
    md = Metadata({"/computeMetadata/v1/instance/preempted": (200, "FALSE")})
    assert notice.gcp_notice(get=md) is None
    assert md.asked[0][2] == {"Metadata-Flavor": "Google"}
    md.answers["/computeMetadata/v1/instance/preempted"] = (200, "TRUE")
    assert notice.gcp_notice(get=md)["detail"] == "instance/preempted is TRUE"


def test_azure_reads_a_preempt_scheduled_event_and_ignores_the_others():
    # https://learn.microsoft.com/azure/virtual-machines/linux/scheduled-events (the document's shape)
    path = "/metadata/scheduledevents?api-version=2020-07-01"
    reboot = {"EventId": "A", "EventType": "Reboot", "ResourceType": "VirtualMachine", "Resources": ["vm0"],
              "EventStatus": "Scheduled", "NotBefore": "Sat, 05 Dec 2026 10:05:00 GMT", "Description": "",
              "EventSource": "Platform", "DurationInSeconds": -1}
    md = Metadata({path: (200, json.dumps({"DocumentIncarnation": 1, "Events": [reboot]}))})
    assert notice.azure_notice(get=md) is None
    assert md.asked[0][2] == {"Metadata": "true"}
    preempt = dict(reboot, EventId="B", EventType="Preempt", NotBefore="Sat, 05 Dec 2026 10:00:30 GMT")
    md.answers[path] = (200, json.dumps({"DocumentIncarnation": 2, "Events": [reboot, preempt]}))
    found = notice.azure_notice(get=md)
    assert found["detail"] == "Scheduled Event Preempt B (Scheduled), not before Sat, 05 Dec 2026 10:00:30 GMT"
    md.answers[path] = (200, json.dumps({"DocumentIncarnation": 0, "Events": []}))
    assert notice.azure_notice(get=md) is None


def test_local_notice_is_the_file_appearing(tmp_path):
    path = tmp_path / "spot-notice"
    assert notice.local_notice(str(path)) is None
    path.write_text("taken back by the test\n")
    assert notice.local_notice(str(path))["detail"] == "%s appeared: taken back by the test" % path


def test_the_record_is_atomic_world_readable_and_does_not_follow_a_planted_link(tmp_path):
    path = tmp_path / "aiinfra" / "preempted.json"
    body = notice.record({"detail": "d", "action_time": None}, "local", 123.5, str(path))
    assert json.loads(path.read_text()) == body == {"detail": "d", "action_time": None, "source": "local",
                                                    "time": 123.5}
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    os.symlink(str(victim), str(path) + ".tmp")
    with pytest.raises(OSError):
        notice.record({"detail": "d"}, "local", 1.0, str(path))
    assert victim.read_text() == "untouched"


def test_push_now_signals_the_running_uploaders_main_processes():
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        out = ("aiinfra-ckpt-r1.service loaded active running aiinfra.gpu_cluster checkpoint uploader\n"
               if "list-units" in argv else "")
        return subprocess.CompletedProcess(argv, 0, stdout=out)
    assert notice.push_now(run=run) == ["aiinfra-ckpt-r1.service"]
    assert calls[1] == ["systemctl", "kill", "--signal=SIGUSR1", "--kill-whom=main", "aiinfra-ckpt-r1.service"]
    calls.clear()
    assert notice.push_now(run=lambda argv, **k: calls.append(argv) or subprocess.CompletedProcess(argv, 0, "")) == []
    assert len(calls) == 1  # nothing to signal


def test_check_once_records_the_first_notice_and_tells_the_uploaders_once(tmp_path, capsys):
    path, found, pushes = str(tmp_path / "preempted.json"), [], []
    assert notice.check_once("local", lambda: None, 1.0, path, push=lambda: pushes.append(1) or []) is None
    assert not os.path.exists(path) and pushes == []
    found.append({"detail": "d", "action_time": None})
    body = notice.check_once("local", lambda: found[0], 2.0, path, push=lambda: pushes.append(1) or ["u.service"])
    assert body["time"] == 2.0 and json.loads(open(path).read()) == body and pushes == [1]
    assert "spot notice (local): d; asked u.service to push now" in capsys.readouterr().out
    assert notice.check_once("local", lambda: found[0], 3.0, path, push=lambda: pushes.append(1) or []) is None
    assert pushes == [1] and json.loads(open(path).read())["time"] == 2.0  # the first notice stays


def test_an_unknown_source_is_refused(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text('{"source": "ibm"}')
    assert notice.main([str(config)]) == 2
    assert "unknown source 'ibm'" in capsys.readouterr().err
