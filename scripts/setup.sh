#!/usr/bin/env bash
# Create .venv and install mailer (and, with "test", what the tests need: the test extras and
# Debian's chromium for the browser tests). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-app}
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ "$want" = test ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing Debian's chromium for the browser tests" >&2
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "warning: chromium not found; browser tests will be skipped" >&2
    fi
  fi
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
