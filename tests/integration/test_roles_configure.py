"""playbooks/configure.yml on fresh local nodes: the first run installs, the second changes nothing;
bad input stops the run before anything is installed."""

from __future__ import annotations

import re

import pytest

from conftest import run_playbook, write_inventory

RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                   r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)", re.M)


def play_recap(output):
    """{host: {ok, changed, unreachable, failed, skipped}} from the PLAY RECAP."""
    tail = output[output.rindex("PLAY RECAP"):]
    return dict((m.group("host"), dict((k, int(v)) for k, v in m.groupdict().items() if k != "host"))
                for m in RECAP.finditer(tail))


def nodes_of(recap, cluster):
    return dict((h, r) for h, r in recap.items() if h.startswith(cluster + "-"))


@pytest.mark.slow
def test_configure_twice_on_two_fresh_nodes(tmp_path, cluster_name):
    inv = write_inventory(tmp_path, cluster_name, size=2)
    run_playbook("playbooks/provision.yml", inventory=inv)

    first = run_playbook("playbooks/configure.yml", inventory=inv)
    recap = nodes_of(play_recap(first.stdout), cluster_name)
    assert sorted(recap) == ["%s-0" % cluster_name, "%s-1" % cluster_name], first.stdout[-3000:]
    for host, counts in recap.items():
        assert counts["failed"] == 0 and counts["unreachable"] == 0, (host, counts)
        assert counts["changed"] > 0, "first run on a fresh node changed nothing: %s %s" % (host, counts)
    # what the roles report having done
    out = first.stdout
    assert " ".join(out.split()).count("nvidia_driver: no NVIDIA GPU here; nothing installed") == 2
    text = " ".join(out.split())
    assert text.count("pytorch: torch 2.13.0+cpu works in /opt/aiinfra/pytorch: gloo process group of 2 all-reduced") == 2
    assert len(re.findall(r"docker: \S+ running", out)) == 2

    second = run_playbook("playbooks/configure.yml", inventory=inv)
    recap2 = nodes_of(play_recap(second.stdout), cluster_name)
    assert sorted(recap2) == sorted(recap)
    for host, counts in recap2.items():
        assert counts["failed"] == 0 and counts["unreachable"] == 0, (host, counts)
        assert counts["changed"] == 0, "second run changed %s on %s:\n%s" % (
            counts["changed"], host, "\n".join(ln for ln in second.stdout.splitlines() if ln.startswith("changed")))
