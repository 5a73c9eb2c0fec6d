#!/bin/sh
# Fails when a C++ file differs from what clang-format would make of it.
set -eu
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
  echo "check-cpp-format: clang-format not found (Debian package: clang-format)" >&2
  exit 1
fi
files=$(find native -name '*.cc' -o -name '*.hh' | sort)
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files
