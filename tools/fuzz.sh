#!/usr/bin/env bash
# Coverage-guided fuzzing of wrenlm (see fuzz/README.md).
#
#   bash tools/fuzz.sh build                  libFuzzer targets (ASan + UBSan) into build/fuzz
#   bash tools/fuzz.sh smoke [SECONDS=60]     every target for SECONDS on its seed corpus; fails on a finding
#   bash tools/fuzz.sh run TARGET SECONDS     a long campaign; its corpus grows in ~/.cache/wrenlm/fuzz/TARGET
#   bash tools/fuzz.sh repro TARGET FILE      runs one input (a crash file) through TARGET
#   bash tools/fuzz.sh list                   the target names
#
# libFuzzer targets are C++ (fuzz/targets/*.cpp); the atheris ones are Python (fuzz/python/*.py) and
# need wrenlm installed in $PYTHON (default: .venv/bin/python if present, else python3) -- atheris is
# installed into it when missing. Environment: WRENLM_FUZZ_CXX (default clang++-14), WRENLM_FUZZ_BUILD
# (default build/fuzz), WRENLM_CACHE_DIR (default ~/.cache/wrenlm).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CXX_BIN="${WRENLM_FUZZ_CXX:-clang++-14}"
BUILD="${WRENLM_FUZZ_BUILD:-$ROOT/build/fuzz}"
CACHE="${WRENLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wrenlm}/fuzz"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
NATIVE_TARGETS=(fuzz_gguf fuzz_safetensors fuzz_hf_json fuzz_tokenizer fuzz_sampler fuzz_model_load)
PYTHON_TARGETS=(fuzz_model_args fuzz_chat_template)
# Every run: an input taking over 10 s is a hang; over 2 GiB of RSS is a finding (readers must bound
# what a file can make them allocate).
COMMON_FLAGS=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
# ASan/UBSan: stop at the first report with a stack trace; leaks are findings too.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

say() { echo "=== fuzz: $*"; }

is_native() { local t; for t in "${NATIVE_TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }
is_python() { local t; for t in "${PYTHON_TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }

ensure_clang() {
  local rt
  rt=$("$CXX_BIN" -print-resource-dir 2>/dev/null || true)
  if command -v "$CXX_BIN" >/dev/null && ls "$rt"/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
    return
  fi
  say "installing clang-14 + libFuzzer (apt-get)"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q clang-14 libclang-rt-14-dev libfuzzer-14-dev
}

ensure_atheris() {
  "$PYTHON" -c "import wrenlm" 2>/dev/null || { echo "fuzz: $PYTHON cannot import wrenlm; install it first" >&2; exit 2; }
  "$PYTHON" -c "import atheris" 2>/dev/null || { say "installing atheris into $PYTHON"; "$PYTHON" -m pip install -q atheris; }
}

# fuzz_model_load links the whole runtime: Eigen headers and OpenBLAS, found by tools/find_deps.py in
# $PYTHON as the main build finds them (both are wrenlm's build requirements from PyPI).
ensure_runtime_deps() {
  if ! "$PYTHON" "$ROOT/tools/find_deps.py" eigen >/dev/null 2>&1 || \
     ! "$PYTHON" "$ROOT/tools/find_deps.py" openblas >/dev/null 2>&1; then
    say "installing cmeel-eigen + scipy-openblas32 into $PYTHON (for fuzz_model_load)"
    "$PYTHON" -m pip install -q cmeel-eigen scipy-openblas32
  fi
}

build() {
  ensure_clang
  ensure_runtime_deps
  local gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S "$ROOT/fuzz" -B "$BUILD" "${gen[@]}" -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_BUILD_TYPE=None \
    -DPython3_EXECUTABLE="$(command -v "$PYTHON")" >/dev/null
  cmake --build "$BUILD" -j"$(nproc)"
}

dict_flags() {
  local d="$ROOT/fuzz/dict/${1#fuzz_}.dict"
  [ -f "$d" ] && echo "-dict=$d"
  return 0
}

# run_target TARGET SECONDS WORK_CORPUS ARTIFACT_DIR: fuzzes with WORK_CORPUS (written to) and the
# repository's seeds (read only). Returns libFuzzer's status: 0 only when nothing was found.
run_target() {
  local t="$1" secs="$2" work="$3" art="$4"
  mkdir -p "$work" "$art"
  local seeds="$ROOT/fuzz/corpus/$t"
  mkdir -p "$seeds"
  if is_native "$t"; then
    [ -x "$BUILD/$t" ] || { echo "fuzz: $BUILD/$t missing; run: bash tools/fuzz.sh build" >&2; return 2; }
    # shellcheck disable=SC2046
    "$BUILD/$t" "${COMMON_FLAGS[@]}" -max_total_time="$secs" -artifact_prefix="$art/" $(dict_flags "$t") \
      "$work" "$seeds"
  else
    "$PYTHON" "$ROOT/fuzz/python/$t.py" "${COMMON_FLAGS[@]}" -max_total_time="$secs" -artifact_prefix="$art/" \
      "$work" "$seeds"
  fi
}

# The last coverage line and final stats of a libFuzzer log; $3 is "cpu_s=N" or "wall_s=N".
summarize() {
  local t="$1" log="$2" secs="$3"
  local last execs
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
  echo "SUMMARY $t: $secs executions=${execs:-?} last: ${last:-none}"
}

smoke() {
  local secs="${1:-60}" failed=() t
  build  # incremental: a no-op when nothing changed
  ensure_atheris
  local tmp
  tmp=$(mktemp -d)
  for t in "${NATIVE_TARGETS[@]}" "${PYTHON_TARGETS[@]}"; do
    say "smoke $t (${secs}s)"
    local start end
    start=$(date +%s)
    if run_target "$t" "$secs" "$tmp/$t" "$tmp/$t-artifacts" >"$tmp/$t.log" 2>&1; then
      end=$(date +%s)
      summarize "$t" "$tmp/$t.log" "wall_s=$((end - start))"
    else
      tail -60 "$tmp/$t.log"
      echo "FINDING in $t: crash inputs in $tmp/$t-artifacts (reproduce: bash tools/fuzz.sh repro $t FILE)"
      failed+=("$t")
    fi
  done
  if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz smoke: findings in ${failed[*]}" >&2
    exit 1
  fi
  rm -rf "$tmp"
  say "smoke: no findings"
}

run_campaign() {
  local t="$1" secs="$2"
  is_native "$t" || is_python "$t" || { echo "fuzz: unknown target '$t' (bash tools/fuzz.sh list)" >&2; exit 2; }
  if is_native "$t"; then build; else ensure_atheris; fi
  local log="$CACHE/$t.last.log"
  mkdir -p "$CACHE"
  say "run $t for ${secs}s; corpus $CACHE/$t; commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  local status=0
  TIMEFORMAT='cpu_user_s=%U cpu_sys_s=%S wall_s=%R'
  { time run_target "$t" "$secs" "$CACHE/$t" "$CACHE/$t-artifacts" >"$log" 2>&1; } 2>"$log.time" || status=$?
  tail -25 "$log"
  cat "$log.time"
  local cpu
  cpu=$(awk '{split($1,a,"="); split($2,b,"="); printf "%.0f", a[2] + b[2]}' "$log.time")
  summarize "$t" "$log" "cpu_s=$cpu"
  echo "corpus: $(find "$CACHE/$t" -type f | wc -l) files in $CACHE/$t"
  if [ "$status" -ne 0 ]; then
    echo "FINDING in $t (status $status): see $CACHE/$t-artifacts" >&2
    exit 1
  fi
}

repro() {
  local t="$1" f="$2"
  if is_native "$t"; then
    [ -x "$BUILD/$t" ] || build
    "$BUILD/$t" -runs=1 "$f"
  else
    ensure_atheris
    "$PYTHON" "$ROOT/fuzz/python/$t.py" -runs=1 "$f"
  fi
}

cmd="${1:-}"
case "$cmd" in
  build) build ;;
  smoke) smoke "${2:-60}" ;;
  run) [ $# -eq 3 ] || { echo "usage: bash tools/fuzz.sh run TARGET SECONDS" >&2; exit 2; }; run_campaign "$2" "$3" ;;
  repro) [ $# -eq 3 ] || { echo "usage: bash tools/fuzz.sh repro TARGET FILE" >&2; exit 2; }; repro "$2" "$3" ;;
  list) printf '%s\n' "${NATIVE_TARGETS[@]}" "${PYTHON_TARGETS[@]}" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
