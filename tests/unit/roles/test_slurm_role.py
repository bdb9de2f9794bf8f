"""The slurm role's alert rules (promtool check / test rules) and its metrics script's output (promtool check
metrics), with fake squeue/sinfo on PATH."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from conftest import ROOT, VENV_BIN

RULES = os.path.join(ROOT, "roles", "slurm", "files", "slurm.rules.yml")
RULE_TESTS = os.path.join(ROOT, "tests", "unit", "roles", "slurm", "slurm.rules.test.yml")
SCRIPT = os.path.join(ROOT, "roles", "slurm", "files", "aiinfra-slurm-metrics")
PROMTOOL = os.path.join(VENV_BIN, "promtool")


def promtool(*args, stdin=None):
    assert os.path.exists(PROMTOOL), "promtool is missing: make setup takes it from Debian's prometheus package"
    return subprocess.run([PROMTOOL] + list(args), input=stdin, capture_output=True, text=True, check=False)


def test_rules_pass_promtool_check_and_their_unit_tests():
    proc = promtool("check", "rules", RULES)
    assert proc.returncode == 0 and "SUCCESS: 2 rules found" in proc.stdout, proc.stdout + proc.stderr
    proc = promtool("test", "rules", RULE_TESTS)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def test_rule_unit_tests_catch_a_broken_rule(tmp_path):
    with open(RULES) as handle:
        text = handle.read()
    with open(RULE_TESTS) as handle:
        tests = handle.read().replace("../../../../roles/slurm/files/slurm.rules.yml", str(tmp_path / "rules.yml"))
    (tmp_path / "tests.yml").write_text(tests)
    for broken in (text.replace('drain.*|down|', 'drain.*|'), text.replace("for: 1m", "for: 5m")):
        assert broken != text
        (tmp_path / "rules.yml").write_text(broken)
        assert promtool("test", "rules", str(tmp_path / "tests.yml")).returncode != 0


def fake(bin_dir, name, output, rc=0):
    path = bin_dir / name
    path.write_text("#!/bin/sh\ncat <<'EOF'\n%sEOF\nexit %d\n" % (output, rc))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize("ok", [True, False])
def test_metrics_script_output(tmp_path, ok):
    bins = tmp_path / "bin"
    bins.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    fake(bins, "squeue", "RUNNING\nPENDING\nPENDING\n" if ok else "", 0 if ok else 1)
    fake(bins, "sinfo", "c-0 allocated\nc-1 drained*\nc-2 idle\nc-2 idle\n" if ok else "", 0 if ok else 1)
    proc = subprocess.run(["sh", SCRIPT, str(out)], env=dict(os.environ, PATH="%s:%s" % (bins, os.environ["PATH"])),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    text = (out / "slurm.prom").read_text()
    assert [p.name for p in out.iterdir()] == ["slurm.prom"]
    check = promtool("check", "metrics", stdin=text)
    assert check.returncode == 0, check.stdout + check.stderr + text
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    if ok:
        assert samples["slurm_up"] == "1"
        assert samples["slurm_queue_depth"] == "2"
        assert samples['slurm_jobs{state="running"}'] == "1" and samples['slurm_jobs{state="pending"}'] == "2"
        assert samples['slurm_nodes{state="drained"}'] == "1" and samples['slurm_nodes{state="idle"}'] == "1"
        assert samples['slurm_nodes{state="down"}'] == "0"
        assert samples['slurm_node_state{slurm_node="c-1",state="drained"}'] == "1"
    else:
        assert samples["slurm_up"] == "0" and samples["slurm_queue_depth"] == "0"
