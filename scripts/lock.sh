#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml: requirements.lock (the app) and
# requirements-test.lock (the app and its test extras), every package pinned with its hashes.
# Run after changing a dependency in pyproject.toml, then commit the lock files with it;
# add --upgrade to move every pin to the newest release the ranges allow.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${PIP_TOOLS_VENV:-.venv-lock}
[ -x "$tools/bin/pip-compile" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q pip-tools; }
common=(--quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links "$@")
"$tools/bin/pip-compile" "${common[@]}" -o requirements.lock pyproject.toml
"$tools/bin/pip-compile" "${common[@]}" --extra test -o requirements-test.lock pyproject.toml
