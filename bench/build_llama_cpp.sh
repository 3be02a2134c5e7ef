#!/usr/bin/env bash
# Installs llama-cpp-python (the peer engine of bench/compare.py) into the current Python environment.
#
#   bash bench/build_llama_cpp.sh            # uses `python` on PATH (activate your venv first)
#   PYTHON=/work/venv/bin/python bash bench/build_llama_cpp.sh
#
# PyPI ships llama-cpp-python only as an sdist, and building it compiles llama.cpp (10-30 minutes
# on 2 cores). So the wheel is built ONCE from the sdist and cached:
#   sdist:  ~/.cache/wrenlm/sdist/llama_cpp_python-$VERSION.tar.gz   (pip download, if missing)
#   wheel:  ~/.cache/wrenlm/wheels/llama_cpp_python-$VERSION-*.whl   (pip wheel, if missing)
# and then installed with `pip install --no-deps` plus its small runtime dependencies
# (diskcache, typing-extensions, numpy, jinja2; already-installed versions are kept).
# A cached wheel skips the build entirely.
#
# The build is CPU-only, with llama.cpp's defaults (GGML_NATIVE: tuned for THIS machine's CPU,
# which is what a local peer benchmark should compare against) and CMAKE_ARGS="-DLLAVA_BUILD=OFF"
# (the multimodal helper library is not needed). Extra CMake options: CMAKE_ARGS="..." in the
# environment are appended. A wheel built with GGML_NATIVE only runs on CPUs with the same
# instruction sets: delete the cached wheel to rebuild after moving to another machine.
#
# Environment: PYTHON (default python), LLAMA_CPP_PYTHON_VERSION (default 0.3.36),
#              WRENLM_CACHE (default ~/.cache/wrenlm), CMAKE_ARGS (appended).
set -euo pipefail

PY=${PYTHON:-python}
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
CACHE=${WRENLM_CACHE:-$HOME/.cache/wrenlm}
WHEELS="$CACHE/wheels"
SDISTS="$CACHE/sdist"
mkdir -p "$WHEELS" "$SDISTS"

find_wheel() {
  ls -1 "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n 1 || true
}

wheel=$(find_wheel)
if [[ -n "$wheel" ]]; then
  echo "[build_llama_cpp] cached wheel: $wheel (no build)"
else
  sdist="$SDISTS/llama_cpp_python-$VERSION.tar.gz"
  if [[ ! -f "$sdist" ]]; then
    echo "[build_llama_cpp] downloading the sdist of llama-cpp-python $VERSION"
    "$PY" -m pip download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$SDISTS"
  fi
  jobs=$(nproc 2>/dev/null || echo 2)
  echo "[build_llama_cpp] building $sdist with $jobs jobs (once; this takes a while)"
  CMAKE_ARGS="-DLLAVA_BUILD=OFF ${CMAKE_ARGS:-}" CMAKE_BUILD_PARALLEL_LEVEL="$jobs" \
    "$PY" -m pip wheel --no-deps --wheel-dir "$WHEELS" "$sdist"
  wheel=$(find_wheel)
  if [[ -z "$wheel" ]]; then
    echo "[build_llama_cpp] the build produced no wheel in $WHEELS" >&2
    exit 1
  fi
fi

"$PY" -m pip install --no-deps "$wheel"
"$PY" -m pip install diskcache typing-extensions numpy jinja2
"$PY" -c "import llama_cpp; print('[build_llama_cpp] llama_cpp', llama_cpp.__version__, 'ready')"
