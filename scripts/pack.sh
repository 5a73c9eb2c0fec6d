#!/bin/sh
# Packs the package into DEST from a copy of this tree: packing rebuilds dist/ (prepare) and
# the addon (prepack: prebuildify's node-gyp rebuild empties build/ first), and a
# scan-backends in use from this clone must keep working meanwhile (issue 22). With OUT, what
# the copy built is left there: OUT/dist and OUT/addon.node. node_modules is linked, not copied.
# Usage: sh scripts/pack.sh DEST [OUT]
set -eu
cd "$(dirname "$0")/.."
dest=$(cd "$1" && pwd)
copy=$(mktemp -d "${TMPDIR:-/tmp}/scan-backends-pack.XXXXXX")
trap 'rm -rf "$copy"' EXIT
tar -c --exclude=./.git --exclude=node_modules --exclude=./build --exclude=./dist --exclude=./.pack \
  --exclude=./cmake-build --exclude=./coverage --exclude=./test-artifacts . | tar -x -C "$copy"
ln -s "$PWD/node_modules" "$copy/node_modules"
(cd "$copy" && npm pack --silent --pack-destination "$dest" >/dev/null)
if [ $# -ge 2 ]; then
  mkdir -p "$2"
  rm -rf "$2/dist" "$2/addon.node"
  mv "$copy/dist" "$2/dist"
  # prebuildify leaves this platform's addon in prebuilds/, newest first.
  addon=$(ls -t "$copy"/prebuilds/*/*.node | head -n 1)
  mv "$addon" "$2/addon.node"
fi
