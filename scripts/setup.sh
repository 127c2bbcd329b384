#!/usr/bin/env bash
# Create .venv and install mailer (and, with "test", what the tests need: the test extras and
# Debian's chromium for the browser tests). Every dependency comes from a lock file, pinned
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
fi
