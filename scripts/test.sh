#!/usr/bin/env bash
# Install everything (idempotent) and run the whole test suite: unit tests, the official Python and JS SDKs
# against real servers, and the real embedded LLM. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nodejs npm
  else
    echo "test.sh: Node.js and npm are needed for the @google/genai tests (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
fi
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

echo "test.sh: lint (ruff) and types (mypy --strict on src)"
.venv/bin/ruff check src tests
.venv/bin/mypy

export LOCALIVE_REQUIRE_NODE=1  # a missing Node.js fails the JS tests instead of skipping them
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
