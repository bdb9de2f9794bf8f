#!/usr/bin/env bash
# the steps are functions that timed() calls by name (shellcheck takes them for unreachable)
# shellcheck disable=SC2317
# What Galaxy / Automation Hub check on an upload, and the ecosystem's changelog and docs linters, on the collection
# as users get it (built with galaxy.yml's build_ignore, installed from the tarball):
#   1. antsibull-changelog lint (changelogs/changelog.yaml and every fragment in changelogs/fragments/)
#   2. CHANGELOG.rst is what antsibull-changelog generates from changelogs/changelog.yaml
#   3. antsibull-docs lint-collection-docs --plugin-docs on the installed collection
#   4. galaxy-importer on the tarball (tests/galaxy-importer.cfg); no ERROR, no warning that
#      tests/galaxy-importer-accepted.txt does not accept (tests/galaxy_importer_check.py)
# galaxy-importer pins attrs<24 and ansible-lint<=26.10.1, so it lives in a virtualenv of its own,
# .venv-importer (made here once, with the same ansible-core as .venv).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
VENV_BIN=$ROOT/.venv/bin
IMPORTER_VENV=$ROOT/.venv-importer
GALAXY_IMPORTER=galaxy-importer==0.4.44
export PATH=$VENV_BIN:$PATH
rc=0
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
timed() {  # timed NAME CMD...: run, print its wall time, remember a failure
  local name=$1 start=$SECONDS; shift
  echo "== $name"
  if "$@"; then echo "-- $name: ok ($((SECONDS - start))s)"; else echo "-- $name: FAILED ($((SECONDS - start))s)"; rc=1; fi
}

timed "antsibull-changelog lint" "$VENV_BIN/antsibull-changelog" lint

changelog_current() {
  if ! { mkdir -p "$WORK/cl" && cp -a galaxy.yml CHANGELOG.rst changelogs "$WORK/cl/" &&
    (cd "$WORK/cl" && "$VENV_BIN/antsibull-changelog" generate) &&
    diff -u CHANGELOG.rst "$WORK/cl/CHANGELOG.rst"; }; then
    echo "CHANGELOG.rst is not what changelogs/changelog.yaml generates: run antsibull-changelog generate"
    return 1
  fi
}
timed "CHANGELOG.rst generated from changelogs/changelog.yaml" changelog_current

build() {
  (unset ANSIBLE_CONFIG && cd "$WORK" &&
    "$VENV_BIN/ansible-galaxy" collection build --force --output-path "$WORK/dist" "$ROOT" &&
    "$VENV_BIN/ansible-galaxy" collection install --force -p "$WORK/installed" "$WORK"/dist/aiinfra-gpu_cluster-*.tar.gz >/dev/null)
}
timed "build the tarball and install it" build || { echo "no tarball: nothing more to check"; exit 1; }

docs_lint() {
  (unset ANSIBLE_CONFIG && cd "$WORK" && export ANSIBLE_COLLECTIONS_PATH=$WORK/installed &&
    "$VENV_BIN/antsibull-docs" lint-collection-docs --plugin-docs "$WORK/installed/ansible_collections/aiinfra/gpu_cluster")
}
timed "antsibull-docs lint-collection-docs --plugin-docs" docs_lint

importer_venv() {
  local core want
  core=$("$VENV_BIN/python" -c 'import ansible.release as r; print(r.__version__)')
  want="$GALAXY_IMPORTER ansible-core==$core"
  local packages=("$GALAXY_IMPORTER" "ansible-core==$core")
  [ "$(cat "$IMPORTER_VENV/.stamp" 2>/dev/null)" = "$want" ] && return 0
  rm -rf "$IMPORTER_VENV" && python3 -m venv "$IMPORTER_VENV" &&
    "$IMPORTER_VENV/bin/python" -m pip install -q --upgrade pip &&
    "$IMPORTER_VENV/bin/python" -m pip install -q "${packages[@]}" &&
    echo "$want" > "$IMPORTER_VENV/.stamp"
}
importer() {
  importer_venv || return 1
  # the importer runs ansible-lint and ansible-doc from PATH: its own venv's, away from the checkout's ansible.cfg
  (unset ANSIBLE_CONFIG && cd "$WORK" && export PATH=$IMPORTER_VENV/bin:$PATH \
      GALAXY_IMPORTER_CONFIG=$ROOT/tests/galaxy-importer.cfg &&
    "$IMPORTER_VENV/bin/python" -m galaxy_importer.main "$WORK"/dist/aiinfra-gpu_cluster-*.tar.gz) > "$WORK/importer.log" 2>&1
  local status=$?
  grep -v -e '^Loading ' -e '^Running ansible-doc ' "$WORK/importer.log" | tail -n 25
  [ "$status" -eq 0 ] || echo "galaxy-importer exited $status"
  "$VENV_BIN/python" tests/galaxy_importer_check.py "$WORK/importer.log" && [ "$status" -eq 0 ]
}
timed "galaxy-importer (Galaxy / Automation Hub's import) on the tarball" importer

exit $rc
