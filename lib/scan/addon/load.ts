// Loads the native addon: a prebuild matching this platform, else build/Release from a source
// build (node-gyp-build decides). Loading happens once, on first use.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import { NativeUnavailableError } from '../../common/errors.js';
import { ENDPOINT_RECORD_SIZE, PROBE_PLANS, RESULT_RECORD_SIZE, TIMED_OUT } from './layout.js';
import { NEWEST_KNOWN_MAJOR } from '../../probes/ggml-rpc.js';
import type { ProbeStep } from '../../probes/types.js';

export interface NativeScanHandle {
  abort(): void;
}

export interface NativeBinding {
  Scan: new (
    endpoints: Uint8Array,
    options: {
      timeoutMs: number;
      concurrency: number;
      retries: number;
      rate: number;
      threads: number;
      backend: string;
      probeTimeoutMs: number;
      grpcService: string;
    },
    onEvent: (
      records: ArrayBuffer | null,
      done: boolean,
      aborted: boolean,
      reports: { index: number; steps: ProbeStep[] }[] | undefined,
    ) => void,
  ) => NativeScanHandle;
  fdLimit(): number | null;
  /** One datagram to an AF_UNIX socket (systemd's NOTIFY_SOCKET): 0 or the errno. */
  notifyDatagram?(path: string, message: string): number;
  /** The addon's record sizes and ids, compared with scan/addon/layout.ts at load. */
  layout?: NativeLayout;
}

export interface NativeLayout {
  endpointRecordSize: number;
  resultRecordSize: number;
  timedOut: number;
  plans: Record<string, number>;
  newestKnownMajor: number;
}

/** What this package expects of the addon; a difference names each field. */
function layoutMismatch(layout: NativeLayout | undefined): string | undefined {
  if (!layout) return 'it reports no record layout (an older build)';
  const expected: NativeLayout = {
    endpointRecordSize: ENDPOINT_RECORD_SIZE,
    resultRecordSize: RESULT_RECORD_SIZE,
    timedOut: TIMED_OUT,
    plans: { ...PROBE_PLANS },
    newestKnownMajor: NEWEST_KNOWN_MAJOR,
  };
  const differences = (Object.keys(expected) as (keyof NativeLayout)[])
    .filter((key) => JSON.stringify(layout[key]) !== JSON.stringify(expected[key]))
    .map((key) => `${key} ${JSON.stringify(layout[key])}, expected ${JSON.stringify(expected[key])}`);
  return differences.length > 0 ? differences.join('; ') : undefined;
}

export type BindingLoad = { binding: NativeBinding; error?: undefined } | { binding?: undefined; error: Error };

let cached: BindingLoad | undefined;

// This file sits three levels below the package root (lib/scan/addon/, dist/scan/addon/), where
// binding.gyp, build/ and prebuilds/ are.
const packageRoot = fileURLToPath(new URL('../../..', import.meta.url));

/**
 * SCAN_BACKENDS_ADDON_PATH names a .node file to load instead (the sanitizer build of
 * `npm run test:asan`); otherwise node-gyp-build picks build/Release, then prebuilds/.
 */
export function loadBinding(): BindingLoad {
  if (!cached) {
    try {
      const require = createRequire(import.meta.url);
      const explicit = process.env.SCAN_BACKENDS_ADDON_PATH;
      const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
      const binding = explicit ? (require(explicit) as NativeBinding) : nodeGypBuild(packageRoot);
      const mismatch = layoutMismatch(binding.layout);
      cached = mismatch
        ? {
            error: new NativeUnavailableError(
              `the native addon does not match this package (${mismatch}); rebuild it with "npm run build:native"`,
            ),
          }
        : { binding };
    } catch (error) {
      cached = { error: error instanceof Error ? error : new Error(String(error)) };
    }
  }
  return cached;
}
