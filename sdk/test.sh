#!/usr/bin/env bash
# The receiver helpers' tests (Python, JavaScript), the shared vectors' freshness, and the
# checks of the deploy files (deploy/k8s, deploy/systemd, docker-compose.yml), from a fresh
# machine: a virtualenv under sdk/.venv with the pinned tools of sdk/requirements.txt.
# Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=sdk/.venv
if [[ ! -x $venv/bin/python ]] || ! cmp -s sdk/requirements.txt "$venv/requirements.txt"; then
    echo "sdk/test.sh: setting up $venv" >&2
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r sdk/requirements.txt
    cp sdk/requirements.txt "$venv/requirements.txt"
fi
py="$PWD/$venv/bin/python"
echo "== sdk/testdata: vectors up to date"
"$py" sdk/testdata/make_signatures.py --check
echo "== sdk/python"
(cd sdk/python && "$py" -m pytest -q -p no:cacheprovider)
echo "== deploy/k8s, deploy/systemd, docker-compose.yml"
"$py" -m pytest -q -p no:cacheprovider --import-mode=importlib deploy/check_manifests.py deploy/check_compose.py
if command -v node >/dev/null 2>&1; then
    echo "== sdk/js (node $(node --version))"
    (cd sdk/js && node --test test/*.test.js)
else
    echo "== sdk/js: skipped, node is not installed"
fi
echo "sdk/test.sh: all passed"
