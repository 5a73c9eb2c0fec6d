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
# The DNS-SD tests' announcer written by others is a Python module, not a command.
python3 -c 'import zeroconf' >/dev/null 2>&1 || packages="$packages python3-zeroconf"
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
# The package, packed from a copy of the tree (scripts/pack.sh) so that a scan-backends in use
# from this clone keeps its build/ and prebuilds/ (issue 22); the package test installs the
# tarball, and checks that the addon recorded here is the one still there. The tests run the
# copy's fresh addon (SCAN_BACKENDS_ADDON_PATH, the loader's test hook) and its dist/, which
# replaces ours by rename: dist/ is never missing either.
rm -rf .pack && mkdir .pack
for addon in build/Release/*.node; do
  if [ -f "$addon" ]; then stat -c '%i %Y %n' "$addon"; fi
done >.pack/addon-before.txt
sh scripts/pack.sh .pack .pack/built
if [ -d dist ]; then mv dist .pack/dist-old; fi
mv .pack/built/dist dist
rm -rf .pack/dist-old
SCAN_BACKENDS_ADDON_PATH="$PWD/.pack/built/addon.node"
export SCAN_BACKENDS_ADDON_PATH

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
