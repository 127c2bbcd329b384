#!/usr/bin/env bash
# Create .venv and install mailer (and, with "test", what the tests need: the test extras,
# Debian's chromium for the browser tests, and axe-core from package-lock.json for the
# accessibility test). Every dependency comes from a lock file, pinned
# with its hashes (requirements.lock, or requirements-test.lock with "test"), so a fresh
# machine gets exactly the tested versions; scripts/lock.sh refreshes them. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-app}
[ -x .venv/bin/python ] || python3 -m venv .venv
lock=requirements.lock
[ "$want" = test ] && lock=requirements-test.lock
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${pip[@]}" --require-hashes -r "$lock"
"${pip[@]}" --no-deps -e .
if [ "$want" = test ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing Debian's chromium for the browser tests" >&2
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "warning: chromium not found; browser tests will be skipped" >&2
    fi
  fi
  # axe-core, exactly as pinned (with its hash) in package-lock.json, into ./node_modules.
  if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's npm for axe-core" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  if command -v npm >/dev/null 2>&1; then
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  else
    echo "warning: npm not found; the accessibility test will fail until axe-core is installed" >&2
  fi
fi
