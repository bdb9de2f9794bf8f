#!/usr/bin/env bash
# The whole test suite (what `make test` and CI run): unit tests, then the integration tests against real local
# nodes, moto and the fake cloud APIs with the quality gates beside them.
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

# The unit tests run first, on both ansible-cores at once. Then the integration tests, and beside them, at the lowest
# CPU and I/O priority, ansible-test sanity + ansible-lint and the Galaxy checks: the integration tests wait on nodes,
# jobs and timeouts for much of their run, and these use the cores then, instead of a quarter of an hour before.
# Neither asserts on time. Each writes a file of its own; their outputs follow, in this order, after the integration
# tests' (a failure in any of them fails the run all the same).
statics=$(mktemp -d /tmp/aiinfra-test-static.XXXXXX)
trap 'rm -f "$results"; rm -rf "$statics"' EXIT
LOW=.venv-lowest/bin/python
echo "=== unit tests (both ansible-cores), at once ($(date +%H:%M:%S))"
( $PY -m pytest -q -p no:cacheprovider tests/unit > "$statics/1" 2>&1; echo $? > "$statics/1.rc" ) &
( if [ -x "$LOW" ]; then $LOW -m pytest -q -p no:cacheprovider tests/unit; else echo "missing $LOW: run make setup-lowest"
  false; fi > "$statics/4" 2>&1; echo $? > "$statics/4.rc" ) &
wait
report() {  # report N NAME: a static step's output and result
  step "$2"
  tee -a "$results" < "$statics/$1"
  [ "$(cat "$statics/$1.rc" 2>/dev/null)" = 0 ] || failed
}
report 1 "unit tests"
report 4 "unit tests on the lowest ansible-core claimed (.venv-lowest)"

low_priority() { if command -v ionice >/dev/null; then nice -n 19 ionice -c 2 -n 7 "$@"; else nice -n 19 "$@"; fi; }
echo
echo "=== ansible-test sanity + ansible-lint, and the Galaxy checks: started beside the integration tests ($(date +%H:%M:%S))"
( low_priority bash tests/sanity.sh > "$statics/2" 2>&1; echo $? > "$statics/2.rc" ) &
( low_priority bash tests/galaxy.sh > "$statics/3" 2>&1; echo $? > "$statics/3.rc" ) &

step "integration tests (local nodes, moto, API doubles)"
# Each test makes its own cluster (unique name) and removes it, pass or fail; the training tests share one per
# worker (tests/conftest.py SharedCluster). The longest files go first (INTEGRATION_SECONDS), not the most tests.
# test_lowest_core.py is one of them: its playbooks are .venv-lowest's ansible-playbook (make setup-lowest), whose
# unit tests ran with the static steps above.
$PY -m pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder --durations=30 tests/integration 2>&1 | tee -a "$results" || failed

echo
echo "=== waiting for the checks started beside the integration tests ($(date +%H:%M:%S))"
wait
report 2 "ansible-test sanity + ansible-lint"
report 3 "Galaxy / Automation Hub: antsibull-changelog lint, antsibull-docs lint, galaxy-importer"

step "done in $(( $(date +%s) - started ))s"
if [ "$status" -ne 0 ]; then
  echo "FAILED steps:"
  printf '  %s\n' "${failed_steps[@]}"
  grep -E '^(FAILED|ERROR)[ :]' "$results" | sort -u | head -60 || true
fi
exit $status
