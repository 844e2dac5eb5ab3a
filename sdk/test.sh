#!/usr/bin/env bash
# The receiver helpers' tests (Python, JavaScript) and the checks of the deploy manifests
# (deploy/k8s, deploy/systemd), from a fresh machine: a virtualenv under sdk/.venv with the
# pinned tools of sdk/requirements.txt. Fails on any failure.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

venv=$here/.venv
stamp=$venv/.requirements.txt
if [[ ! -x $venv/bin/python ]] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  echo "sdk/test.sh: setting up $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

echo "== sdk/python, deploy checks (pytest)"
PYTHONPATH="$here/python/src" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
  "$here/python/tests" "$root/deploy/check_manifests.py"

if command -v node >/dev/null; then
  echo "== sdk/js (node --test)"
  node --test "$here/js/test/"
else
  echo "== sdk/js: skipped, node is not installed"
fi
