#!/usr/bin/env bash
# ansible-test sanity on the collection (no ignore file) and ansible-lint (production profile, the whole tree).
# ansible-test wants the collection at .../ansible_collections/aiinfra/gpu_cluster, so a copy of
# the tracked files is checked there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV_BIN=$ROOT/.venv/bin
SANITY_VENV=$ROOT/.venv-sanity
CORE=$("$VENV_BIN/python" -c 'import ansible.release as r; print(r.__version__)')
REQS=$("$VENV_BIN/python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_data", "requirements"))')
# ansible-test's --venv mode downloads a pip bootstrap script from the internet; this venv
# holds the same ansible-core and the pinned sanity requirements instead (made once).
if [ "$(cat "$SANITY_VENV/.stamp" 2>/dev/null)" != "$CORE" ]; then
  rm -rf "$SANITY_VENV"
  python3 -m venv "$SANITY_VENV"
  reqs=()
  for f in "$REQS"/sanity.*.txt; do reqs+=(-r "$f"); done
  "$SANITY_VENV/bin/python" -m pip install -q "ansible-core==$CORE" "${reqs[@]}"
  echo "$CORE" > "$SANITY_VENV/.stamp"
fi
# ...and its per-test venvs bootstrap pip with a script from the internet: use our stand-in
PIP_V=$("$SANITY_VENV/bin/python" -c "import re, ansible_test._internal.python_requirements as m, inspect; print(re.search(r\"pip='([0-9.]+)'\", inspect.getsource(m.get_venv_packages)).group(1))")
for v in $PIP_V; do
  f=~/.ansible/test/cache/get_pip_${v//./_}.py
  [ -e "$f" ] || { mkdir -p "$(dirname "$f")"; cp tests/sanity/get_pip_standin.py "$f"; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
DEST=$WORK/ansible_collections/aiinfra/gpu_cluster
mkdir -p "$DEST"
# tracked and new (not ignored) files: what would be committed
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] && mkdir -p "$DEST/$(dirname "$f")" && cp -a "$f" "$DEST/$f"
done
if [ -e "$DEST/tests/sanity/ignore-2.19.txt" ] || ls "$DEST"/tests/sanity/ignore-*.txt >/dev/null 2>&1; then
  echo "sanity ignore files are not allowed" >&2; exit 1
fi
cd "$DEST"
echo "== ansible-test sanity"
rc=0
"$SANITY_VENV/bin/ansible-test" sanity --python 3.11 --color no "$@" || rc=1
# the collection as users get it: built (galaxy.yml's build_ignore) and installed from the tarball, away
# from the checkout's ansible.cfg
echo "== ansible-test sanity on the built and installed collection"
(
  cd "$WORK" && unset ANSIBLE_CONFIG &&
  "$VENV_BIN/ansible-galaxy" collection build --force --output-path "$WORK/dist" "$DEST" >/dev/null &&
  "$VENV_BIN/ansible-galaxy" collection install --force -p "$WORK/installed" "$WORK"/dist/aiinfra-gpu_cluster-*.tar.gz \
    >/dev/null 2>&1 &&
  cd "$WORK/installed/ansible_collections/aiinfra/gpu_cluster" && [ ! -e Makefile ] && [ ! -e galaxy.yml ] &&
  "$SANITY_VENV/bin/ansible-test" sanity --python 3.11 --color no "$@"
) || rc=1
cd "$ROOT"
echo "== ansible-lint (production profile, the whole tree: galaxy.yml, changelogs, extensions, molecule included)"
"$VENV_BIN/ansible-lint" --profile production --nocolor || rc=1
exit $rc
