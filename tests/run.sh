#!/usr/bin/env bash
# The whole test suite (what `make test` and CI run): unit tests, quality gates, then the
# integration tests against real local nodes, moto and the fake cloud APIs.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=.venv/bin/python
export ANSIBLE_CONFIG=$PWD/ansible.cfg
export PATH=$PWD/.venv/bin:$PATH
status=0
failed_steps=()
step() { echo; echo "=== $1 ($(date +%H:%M:%S))"; current="$1"; }
failed() { status=1; failed_steps+=("$current"); }
started=$(date +%s)
# Every pytest run's output also goes to this file, so the failures can be listed again at the very end: CI shows
# only the tail of a long run.
results=$(mktemp /tmp/aiinfra-test-run.XXXXXX)
trap 'rm -f "$results"' EXIT

# The static steps run at once (each mostly on one core: the unit tests, ansible-test's and ansible-lint's runs,
# galaxy-importer, the unit tests again on the lowest ansible-core claimed), each into a file of its own; their
# outputs follow one after the other, in this order.
statics=$(mktemp -d /tmp/aiinfra-test-static.XXXXXX)
trap 'rm -f "$results"; rm -rf "$statics"' EXIT
echo "=== unit tests (both ansible-cores), ansible-test sanity + ansible-lint, and the Galaxy checks, at once ($(date +%H:%M:%S))"
( $PY -m pytest -q -p no:cacheprovider tests/unit > "$statics/1" 2>&1; echo $? > "$statics/1.rc" ) &
( bash tests/sanity.sh > "$statics/2" 2>&1; echo $? > "$statics/2.rc" ) &
( bash tests/galaxy.sh > "$statics/3" 2>&1; echo $? > "$statics/3.rc" ) &
LOW=.venv-lowest/bin/python
( if [ -x "$LOW" ]; then $LOW -m pytest -q -p no:cacheprovider tests/unit; else echo "missing $LOW: run make setup-lowest"
  false; fi > "$statics/4" 2>&1; echo $? > "$statics/4.rc" ) &
wait
n=0
for name in "unit tests" "ansible-test sanity + ansible-lint" \
    "Galaxy / Automation Hub: antsibull-changelog lint, antsibull-docs lint, galaxy-importer" \
    "unit tests on the lowest ansible-core claimed (.venv-lowest)"; do
  n=$((n + 1))
  step "$name"
  tee -a "$results" < "$statics/$n"
  [ "$(cat "$statics/$n.rc" 2>/dev/null)" = 0 ] || failed
done

step "integration tests (local nodes, moto, API doubles)"
# Each test makes its own cluster (unique name) and removes it, pass or fail; the training tests share one per
# worker (tests/conftest.py SharedCluster). The longest files go first (INTEGRATION_SECONDS), not the most tests.
# test_lowest_core.py is one of them: its playbooks are .venv-lowest's ansible-playbook (make setup-lowest), whose
# unit tests ran with the static steps above.
$PY -m pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder --durations=30 tests/integration 2>&1 | tee -a "$results" || failed

step "done in $(( $(date +%s) - started ))s"
if [ "$status" -ne 0 ]; then
  echo "FAILED steps:"
  printf '  %s\n' "${failed_steps[@]}"
  grep -E '^(FAILED|ERROR)[ :]' "$results" | sort -u | head -60 || true
fi
exit $status
