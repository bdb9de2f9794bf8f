"""tests/galaxy_importer_check.py against galaxy-importer 0.4.44's own output (lines recorded from its runs on this
collection's tarball): a failed import, a lint timeout and an unaccepted warning fail; the accepted warning does not."""

from __future__ import annotations

import importlib.util
import os

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("galaxy_importer_check", os.path.join(ROOT, "tests", "galaxy_importer_check.py"))
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

ACCEPTED = check.accepted_patterns(os.path.join(ROOT, "tests", "galaxy-importer-accepted.txt"))

HEAD = """Importing with galaxy-importer 0.4.44
Getting doc strings via ansible-doc
Finding content inside collection
Loading module_utils _storage.cli
Loading role cuda
"""
LINT = "Linting collection via ansible-lint 26.10.1...\n"
LINT_DONE = "...ansible-lint run complete\nCollection loading complete\n"
DONE = "Importer processing completed successfully\n"
ACCEPTED_LINE = ("WARNING: ERROR    Failed to find aiinfra.gpu_cluster.site playbook.\n"
                 "WARNING: ERROR    Failed to find aiinfra.gpu_cluster.nodes playbook.\n")


def test_a_clean_import_with_the_accepted_warning_passes():
    assert check.problems(HEAD + LINT + ACCEPTED_LINE + LINT_DONE + DONE, ACCEPTED) == []


def test_a_failed_import_fails():
    out = HEAD + "ERROR: The import failed for the following reason: No role readme found.\n"
    found = check.problems(out, ACCEPTED)
    assert any("No role readme found" in p for p in found) and any("did not print" in p for p in found), found


def test_module_utils_named_main_fails():
    out = HEAD + "ERROR: The import failed for the following reason: module_utils name invalid format: __main__\n"
    assert check.problems(out, ACCEPTED)


def test_a_lint_timeout_fails_even_when_the_import_completes():
    out = HEAD + LINT + "ERROR: Timeout on call to ansible-lint\n" + LINT_DONE + DONE
    assert check.problems(out, ACCEPTED) == ["error: ERROR: Timeout on call to ansible-lint"]


def test_a_lint_violation_or_a_missing_changelog_fails():
    violation = "WARNING: roles/cuda/tasks/main.yml:3: name[missing]: All tasks should be named.\n"
    assert check.problems(HEAD + LINT + violation + LINT_DONE + DONE, ACCEPTED) == ["warning not accepted: " + violation.strip()]
    changelog = ("WARNING: No changelog found. Add a CHANGELOG.rst or CHANGELOG.md file in the collection root or docs/ dir, "
                 "or a changelogs/changelog.(yml/yaml) file.\n")
    assert check.problems(HEAD + changelog + LINT + LINT_DONE + DONE, ACCEPTED)


def test_the_accepted_pattern_is_narrow():
    for other in ("WARNING: ERROR    Failed to find aiinfra.gpu_cluster.trian playbook.\n",
                  "WARNING: ERROR    Failed to find other.collection.site playbook.\n",
                  "WARNING: ERROR    Failed to load aiinfra.gpu_cluster.site playbook due to failing syntax check.\n"):
        assert check.problems(HEAD + LINT + other + LINT_DONE + DONE, ACCEPTED), other
