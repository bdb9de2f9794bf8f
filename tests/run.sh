#!/usr/bin/env bash
# The whole test suite (what `make test` and CI run): unit tests, quality gates, then the
# integration tests against real local nodes, moto and the fake cloud APIs.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=.venv/bin/python
export ANSIBLE_CONFIG=$PWD/ansible.cfg
export PATH=$PWD/.venv/bin:$PATH
status=0
step() { echo; echo "=== $1 ($(date +%H:%M:%S))"; }
started=$(date +%s)

step "unit tests"
$PY -m pytest -q -p no:cacheprovider tests/unit || status=1

step "ansible-test sanity + ansible-lint"
bash tests/sanity.sh || status=1

step "Galaxy / Automation Hub: antsibull-changelog lint, antsibull-docs lint, galaxy-importer"
bash tests/galaxy.sh || status=1

step "integration tests (local nodes, moto, API doubles)"
# Each test makes its own cluster (unique name) and removes it, pass or fail; the training tests share one per
# worker (tests/conftest.py SharedCluster). The longest files go first (INTEGRATION_SECONDS), not the most tests.
$PY -m pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder --durations=30 tests/integration || status=1

step "lowest ansible-core claimed (.venv-lowest): unit tests + one local train"
# make setup-lowest builds it (requirements-lowest.txt); the integration part is 2 nodes and one train
LOW=.venv-lowest/bin/python
if [ -x "$LOW" ]; then
  $LOW -m pytest -q -p no:cacheprovider tests/unit || status=1
  $LOW -m pytest -q -p no:cacheprovider -m lowest tests/integration/test_lowest_core.py || status=1
else
  echo "missing $LOW: run make setup-lowest"; status=1
fi

step "done in $(( $(date +%s) - started ))s"
exit $status
