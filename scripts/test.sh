#!/usr/bin/env bash
# Set up (first time, with test tools and Chromium) and run the whole test suite.
# CIVIC_TEST_DATABASE=postgres runs it on a throwaway PostgreSQL cluster (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${CIVIC_TEST_DATABASE:-sqlite}" = postgres ]; then
  scripts/setup.sh --dev --postgres
else
  scripts/setup.sh --dev
fi
exec .venv/bin/python -m pytest "$@"
