#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run them.
# Usage: scripts/test.sh [pytest args…]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
