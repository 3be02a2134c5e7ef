#!/usr/bin/env bash
# Builds llama.cpp's own command-line tools (llama-batched-bench, llama-server, llama-quantize) from
# the llama.cpp sources vendored in the llama-cpp-python sdist, the peer the benchmarks compare with.
# Cached: $WRENLM_CACHE_DIR/llama.cpp-<version>-tools/bin. Prints that bin folder.
#
#   bash bench/build_llama_tools.sh [TARGET...]     (default: llama-batched-bench llama-server llama-quantize)
set -euo pipefail
VERSION=0.3.36
CACHE="${WRENLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wrenlm}"
SDIST="$CACHE/sdist/llama_cpp_python-$VERSION.tar.gz"
OUT="$CACHE/llama.cpp-$VERSION-tools"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(llama-batched-bench llama-server llama-quantize)
missing=()
for t in "${TARGETS[@]}"; do [ -x "$OUT/bin/$t" ] || missing+=("$t"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$OUT/bin"; exit 0; fi
if [ ! -f "$SDIST" ]; then
  mkdir -p "$CACHE/sdist"
  python3 -m pip download -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$CACHE/sdist" >&2
fi
SRC="$OUT/src"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  tmp=$(mktemp -d)
  tar -xzf "$SDIST" -C "$tmp" "llama_cpp_python-$VERSION/vendor/llama.cpp"
  mkdir -p "$OUT"
  rm -rf "$SRC"
  mv "$tmp/llama_cpp_python-$VERSION/vendor/llama.cpp" "$SRC"
  rm -rf "$tmp"
fi
# As llama-cpp-python builds it (native CPU flags, no CURL), so the tools and the Python peer match.
cmake -S "$SRC" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON >&2
cmake --build "$OUT/build" -j"$(nproc)" --target "${missing[@]}" >&2
mkdir -p "$OUT/bin"
for t in "${missing[@]}"; do cp "$OUT/build/bin/$t" "$OUT/bin/"; done
echo "$OUT/bin"
