#!/bin/sh
# The JS test suite against the addon built with AddressSanitizer and UndefinedBehaviorSanitizer.
# Node itself is not instrumented, so the ASan runtime is preloaded; any report aborts the
# process that hit it, which fails its test. Leak detection is off: Node frees little at exit.
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B cmake-build/asan -DSB_ASAN=ON -DSB_ADDON=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build cmake-build/asan -j2 --target scan_backends_addon >/dev/null
npm run --silent build:ts
SCAN_BACKENDS_ADDON_PATH="$PWD/cmake-build/asan/scan_backends.node"
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:handle_segv=0
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export SCAN_BACKENDS_ADDON_PATH LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
status=0
# The package test installs from the tarball (no sanitizer build in it): left to npm test, as
# are the tests of what the addon takes no part in (the browser, Prometheus, HTTP security and
# slow clients, on-change commands, doctor's report, log files and stdout, Redis claims, the
# container's health check, cross-compiled prebuilds), to keep CI's time for the tests that
# drive it.
npx --no-install vitest run --project unit --project real --exclude test/real/package.test.ts \
  --exclude test/real/prometheus.test.ts --exclude test/real/on-change.test.ts \
  --exclude test/real/doctor.test.ts --exclude test/real/prebuild-all.test.ts \
  --exclude test/real/serve-slow-clients.test.ts --exclude test/real/log-file-faults.test.ts \
  --exclude test/real/stalled-stdout.test.ts --exclude test/real/claims.test.ts \
  --exclude test/real/container-healthcheck.test.ts || status=1
unshare -rn npx --no-install vitest run --project netns \
  --exclude test/netns/dashboard.test.ts --exclude test/netns/serve-security.test.ts || status=1
exit $status
