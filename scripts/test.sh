#!/usr/bin/env bash
# Install everything (idempotent) and run the whole test suite: unit tests, the official Python and JS SDKs
# against real servers, and the real embedded LLM. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh

# Debian packages the tests need: Node.js for the JS SDK, espeak-ng and sox to make test speech, redis-server for
# the shared-sessions tests, nginx for the load-balanced recipe (deploy/nginx.conf), Chromium for the playground's
# browser tests.
missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "test.sh: the tests need these Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
# The conformance test drives the newest google-genai (the `test` extra's pin) and the oldest one localive supports,
# installed beside it (the JS SDK's oldest comes from tests/js/package.json as genai-oldest).
OLDEST_PYTHON_SDK=3.3.0
if ! [ -d ".venv/oldest-sdk/google_genai-$OLDEST_PYTHON_SDK.dist-info" ]; then
  rm -rf .venv/oldest-sdk
  .venv/bin/python -m pip install --quiet --no-deps --target .venv/oldest-sdk "google-genai==$OLDEST_PYTHON_SDK"
fi

# Third-party OpenAI-compatible speech servers from PyPI (tests/integration/test_remote_speech.py), in their own
# virtualenv .venv-engines: they pin versions of their own.
bash scripts/install-test-engines.sh

echo "test.sh: lint (ruff), types (mypy --strict on src and benchmarks) and layers (lint-imports: docs/architecture.md)"
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy
PYTHONPATH=src .venv/bin/lint-imports  # PYTHONPATH: this checkout's source, whichever one .venv was installed from

export LOCALIVE_REQUIRE_NODE=1  # a missing Node.js fails the JS tests instead of skipping them
export LOCALIVE_REQUIRE_ENGINES=1  # missing third-party engine servers fail their tests instead of skipping them
export LOCALIVE_REQUIRE_BROWSER=1  # a missing Chromium fails the playground tests instead of skipping them
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
