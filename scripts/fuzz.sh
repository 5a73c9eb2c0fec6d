#!/bin/sh
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for SECONDS
# (default 60); prints each target's executions. Corpora live in cmake-build/fuzz-corpus/.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (Debian packages clang, libclang-rt-14-dev)" >&2; exit 1; }
cmake -S . -B cmake-build/fuzz -DSB_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build cmake-build/fuzz -j2 --target fuzz_ggml_rpc fuzz_grpc_health fuzz_hpack >/dev/null
for target in fuzz_ggml_rpc fuzz_grpc_health fuzz_hpack; do
  corpus=cmake-build/fuzz-corpus/$target
  mkdir -p "$corpus"
  log=cmake-build/fuzz/$target.log
  if ! cmake-build/fuzz/$target -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=1024 "$corpus" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $target FAILED" >&2
    exit 1
  fi
  execs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1)
  echo "fuzz: $target ok, ${execs:-? runs} in ${seconds} s"
done
