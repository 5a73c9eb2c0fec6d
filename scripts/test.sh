#!/bin/sh
# The whole test run: install what is missing, lint and type-check, build, then the three
# vitest projects. The netns project runs inside `unshare -rn` (a network namespace holding
# only lo), where nftables rules make silent hosts without touching the host's firewall.
set -eu
cd "$(dirname "$0")/.."

packages=""
# The other architecture's compiler, for scripts/prebuild-all.sh's test.
cross=aarch64-linux-gnu-g++:g++-aarch64-linux-gnu
[ "$(uname -m)" = aarch64 ] && cross=x86_64-linux-gnu-g++:g++-x86-64-linux-gnu
for tool in unshare:util-linux ip:iproute2 nft:nftables clang-format:clang-format make:make g++:g++ cmake:cmake redis-server:redis-server chromium:chromium prometheus:prometheus faketime:faketime $cross; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || packages="$packages ${tool#*:}"
done
if [ -n "$packages" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing Debian packages:$packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
  else
    echo "test: missing Debian packages:$packages (apt-get install -y$packages)" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
  fi
fi
[ -d node_modules ] || npm ci

npm run --silent lint
# Packing builds everything: prepare compiles dist/, prepack the prebuild (and build/Release).
# The package test installs this tarball.
rm -rf .pack && mkdir .pack && npm pack --silent --pack-destination .pack >/dev/null

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
status=0

# The C++ core's own tests, under AddressSanitizer and UBSan.
cmake -S . -B cmake-build/core -DSB_ASAN=ON >/dev/null
cmake --build cmake-build/core -j2 >/dev/null
cmake-build/core/core_test >"$reports/core.txt" 2>&1 || status=1
cat "$reports/core.txt"
npx --no-install vitest run --project unit --project real \
  --reporter=default --reporter=json --outputFile.json="$reports/host.json" || status=1
if command -v unshare >/dev/null 2>&1 && unshare -rn true 2>/dev/null; then
  unshare -rn npx --no-install vitest run --project netns \
    --reporter=default --reporter=json --outputFile.json="$reports/netns.json" || status=1
elif [ "${CI:-}" = "true" ]; then
  echo "test: cannot create a network namespace (unshare -rn, package util-linux)" >&2
  status=1
else
  echo "test: skipping the netns project: cannot create a network namespace (unshare -rn, package util-linux)" >&2
fi
node scripts/summarize-tests.mjs "$reports"/*.json "$reports/core.txt" || status=1
exit $status
