#!/usr/bin/env bash
# Installs the SHACL validator the catalogue tests use (pySHACL, pinned, from PyPI) into a
# virtual environment cached outside the repository, and prints its python's path.
# tests/run.sh exports that path as VARDHUB_SHACL_PYTHON.
set -euo pipefail
readonly PYSHACL_VERSION=0.40.1
cache=${VARDHUB_CACHE_DIR:-$HOME/.cache/vardhub}
venv="$cache/shacl-pyshacl-$PYSHACL_VERSION"
if ! "$venv/bin/python" -c "import pyshacl" >/dev/null 2>&1; then
    mkdir -p "$cache"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "pyshacl==$PYSHACL_VERSION" >&2
fi
echo "$venv/bin/python"
