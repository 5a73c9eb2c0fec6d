#!/bin/sh
# Builds the prebuilds this machine can make, of those the package ships for (linux-x64 and
# linux-arm64 with glibc and musl, darwin-arm64), into OUT/prebuilds/ (OUT: default the
# package root), and names each one it cannot make and what would make it.
#   sh scripts/prebuild-all.sh [OUT [TARGET…]]     (TARGET: linux-arm64-glibc, …; default all)
# Each build runs in a copy of the addon's sources: node-gyp rebuilds build/ in place, and
# build/Release (which this tree loads first) must never hold another architecture's addon.
set -eu
cd "$(dirname "$0")/.."
root=$PWD
out=$(mkdir -p "${1:-$root}" && cd "${1:-$root}" && pwd)
[ $# -gt 0 ] && shift
shipped="linux-x64-glibc linux-arm64-glibc linux-x64-musl linux-arm64-musl darwin-arm64"
targets=${*:-$shipped}
for target in $targets; do
  case " $shipped " in
    *" $target "*) ;;
    *) echo "prebuild-all: unknown target \"$target\"; expected one of: $shipped" >&2 && exit 2 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R package.json binding.gyp native "$work/"
ln -s "$root/node_modules" "$work/node_modules"

host_platform=$(node -p process.platform)
host_arch=$(node -p process.arch)
host_libc=
if [ "$host_platform" = linux ]; then
  # node-gyp-build's own test for musl.
  host_libc=glibc
  [ -f /etc/alpine-release ] && host_libc=musl
fi
status=0

# The GNU triple of a Linux target's compiler: aarch64-linux-gnu-g++, x86_64-linux-musl-g++.
triple() {
  cpu=x86_64
  [ "$1" = arm64 ] && cpu=aarch64
  abi=gnu
  [ "$2" = musl ] && abi=musl
  echo "$cpu-linux-$abi"
}

# ELF's e_machine: the architecture a Linux addon was built for, so that a cross build that
# fell back to the host's compiler does not pass unnoticed.
elf_arch() {
  node -e 'const b = require("fs").readFileSync(process.argv[1]);
    console.log({ 62: "x64", 183: "arm64" }[b.readUInt16LE(18)] ?? "unknown")' "$1"
}

# prebuild TARGET ARCH LIBC [VAR=VALUE…]: one prebuildify run, its output checked.
prebuild() {
  target=$1 arch=$2 libc=$3
  shift 3
  if ! (cd "$work" && rm -rf build && env "$@" ${libc:+PREBUILD_LIBC=$libc} npx --no-install prebuildify \
    --napi --strip --tag-libc --arch "$arch" --out "$out" >"$work/$target.log" 2>&1); then
    echo "failed  $target: the build failed; its end:" >&2
    tail -n 20 "$work/$target.log" >&2
    status=1
    return 0
  fi
  file=$(ls "$out/prebuilds/$host_platform-$arch/"*".${libc:-glibc}.node")
  if [ -n "$libc" ] && [ "$(elf_arch "$file")" != "$arch" ]; then
    echo "failed  $target: $file is not an $arch binary" >&2
    status=1
    return 0
  fi
  echo "built   $target: ${file#"$out"/}"
}

cannot() {
  echo "cannot  $1 here: $2"
}

for target in $targets; do
  platform=${target%%-*}
  arch=${target#*-}
  arch=${arch%%-*}
  libc=${target#"$platform-$arch"}
  libc=${libc#-}
  if [ "$platform" != "$host_platform" ]; then
    case $platform in
      darwin) cannot "$target" "needs macOS on Apple silicon: run 'npm run prebuild' there" ;;
      *) cannot "$target" "needs Linux: run this script on Linux" ;;
    esac
  elif [ "$arch" = "$host_arch" ] && [ "$libc" = "$host_libc" ]; then
    prebuild "$target" "$arch" "$libc"
  elif [ "$platform" = linux ] && command -v "$(triple "$arch" "$libc")-g++" >/dev/null 2>&1; then
    t=$(triple "$arch" "$libc")
    prebuild "$target" "$arch" "$libc" CC="$t-gcc" CXX="$t-g++" LINK="$t-g++" PREBUILD_STRIP_BIN="$t-strip"
  elif [ "$platform" = linux ] && [ "$libc" = glibc ] && [ "$host_libc" = glibc ]; then
    cannot "$target" "no $(triple "$arch" glibc)-g++ (apt-get install g++-$(triple "$arch" glibc | tr _ -))"
  elif [ "$platform" = linux ]; then
    cannot "$target" "no $(triple "$arch" "$libc")-g++, and Debian packages no such toolchain (musl-tools is C only): run 'npm run prebuild' in Alpine (node:20-alpine) on $arch"
  else
    cannot "$target" "needs macOS on Apple silicon: run 'npm run prebuild' there"
  fi
done
exit $status
