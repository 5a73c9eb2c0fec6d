// Loads the native addon: a prebuild matching this platform, else build/Release from a source
// build (node-gyp-build decides). Loading happens once, on first use.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import { NativeUnavailableError } from '../../common/errors.js';
import { POLLERS, TIMINGS, type Poller, type Timing } from '../../common/options.js';
import {
  ENDPOINT_RECORD_SIZE,
  ENGINE_PROBES,
  NATIVE_STATUS_CODES,
  PROBE_PLANS,
  RESULT_RECORD_SIZE,
  TIMED_OUT,
  type EngineTiming,
} from './layout.js';
import { GGML_RPC_COMMANDS, NEWEST_KNOWN_MAJOR } from '../../probes/ggml-rpc.js';
import { STEP_OUTCOMES, type ProbeStep } from '../../probes/types.js';

export interface NativeScanHandle {
  abort(): void;
}

export interface NativeBinding {
  Scan: new (
    endpoints: Uint8Array,
    options: {
      timing: Timing;
      minRttTimeoutMs: number;
      timeoutMs: number;
      concurrency: number;
      retries: number;
      rate: number;
      threads: number;
      poller: Poller;
      probeTimeoutMs: number;
      grpcService: string;
    },
    onEvent: (
      records: ArrayBuffer | null,
      done: boolean,
      aborted: boolean,
      reports: { index: number; steps: ProbeStep[] }[] | undefined,
      /** With the last call (done): the timing the scan ended with. */
      timing?: EngineTiming,
    ) => void,
  ) => NativeScanHandle;
  fdLimit(): number | null;
  /** One datagram to an AF_UNIX socket (systemd's NOTIFY_SOCKET): 0 or the errno. */
  notifyDatagram?(path: string, message: string): number;
  /** The addon's record sizes, ids and names, compared with EXPECTED_LAYOUT at load. */
  layout?: unknown;
}

export interface NativeLayout {
  endpointRecordSize: number;
  resultRecordSize: number;
  timedOut: number;
  plans: Readonly<Record<string, number>>;
  newestKnownMajor: number;
  /** The probes the core runs, by name (SB_PROBE_KIND_MAP). */
  probeKinds: readonly string[];
  /** Every probe step outcome (SB_PROBE_OUTCOME_MAP). */
  outcomes: readonly string[];
  /** The poller names a scan may choose (SB_BACKEND_MAP). */
  pollers: readonly string[];
  /** The codes of the core's errors (SB_STATUS_MAP). */
  statuses: readonly string[];
  /** The ggml-rpc command ids the probe sends, by name (SB_GGML_RPC_COMMAND_MAP). */
  ggmlRpcCommands: Readonly<Record<string, number>>;
  /** The `timing` names a scan takes (an older build has none and would ignore the option). */
  timings: readonly string[];
}

/** What this package expects of the addon: each value is the TS constant it mirrors. */
export const EXPECTED_LAYOUT: Readonly<NativeLayout> = {
  endpointRecordSize: ENDPOINT_RECORD_SIZE,
  resultRecordSize: RESULT_RECORD_SIZE,
  timedOut: TIMED_OUT,
  plans: PROBE_PLANS,
  newestKnownMajor: NEWEST_KNOWN_MAJOR,
  probeKinds: ENGINE_PROBES,
  outcomes: STEP_OUTCOMES,
  pollers: POLLERS,
  statuses: NATIVE_STATUS_CODES,
  ggmlRpcCommands: GGML_RPC_COMMANDS,
  timings: TIMINGS,
};

/** A value to compare: a list of names or an object's keys in any order are the same mirror. */
function canonical(value: unknown): string {
  if (Array.isArray(value))
    return JSON.stringify(value.every((v) => typeof v === 'string') ? [...value].sort() : value);
  if (value !== null && typeof value === 'object') {
    return JSON.stringify(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
  return JSON.stringify(value);
}

/** Each field of the addon's layout that differs from EXPECTED_LAYOUT, named; undefined when none does. */
export function layoutMismatch(layout: unknown): string | undefined {
  const expected = EXPECTED_LAYOUT;
  if (layout === null || typeof layout !== 'object') return 'it reports no record layout (an older build)';
  const actual = layout as Partial<Record<keyof NativeLayout, unknown>>;
  const differences = (Object.keys(expected) as (keyof NativeLayout)[])
    .filter((key) => canonical(actual[key]) !== canonical(expected[key]))
    .map((key) => `${key} ${JSON.stringify(actual[key])}, expected ${JSON.stringify(expected[key])}`);
  return differences.length > 0 ? differences.join('; ') : undefined;
}

export type BindingLoad = { binding: NativeBinding; error?: undefined } | { binding?: undefined; error: Error };

let cached: BindingLoad | undefined;

// This file sits three levels below the package root (lib/scan/addon/, dist/scan/addon/), where
// binding.gyp, build/ and prebuilds/ are.
const packageRoot = fileURLToPath(new URL('../../..', import.meta.url));

/**
 * The prebuild node-gyp-build looks for on this machine, as prebuildify --tag-libc files it:
 * `linux-arm64-musl`, `darwin-arm64`. The inputs are node-gyp-build's own (npm's platform and
 * arch overrides, LIBC, and Alpine's release file for musl), so the name is the one it missed.
 */
export function prebuildPlatform(
  env: NodeJS.ProcessEnv = process.env,
  alpine: boolean = existsSync('/etc/alpine-release'),
): string {
  const platform = env.npm_config_platform || process.platform;
  const arch = env.npm_config_arch || process.arch;
  if (platform !== 'linux') return `${platform}-${arch}`;
  return `${platform}-${arch}-${env.LIBC || (alpine ? 'musl' : 'glibc')}`;
}

/** node-gyp-build's "No native build was found for platform=… arch=… libc=…", in our words. */
function noBuildFound(error: unknown): NativeUnavailableError | undefined {
  if (!(error instanceof Error) || !error.message.startsWith('No native build was found')) return undefined;
  return new NativeUnavailableError(
    `no prebuild for ${prebuildPlatform()} in prebuilds/ and no source build in build/Release`,
    { cause: error },
  );
}

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
      cached = { error: noBuildFound(error) ?? (error instanceof Error ? error : new Error(String(error))) };
    }
  }
  return cached;
}
