// The scan options in one place: their types, ranges and defaults, checked once when a scan
// is created (before any name is resolved), for the library, the CLI and the resolver alike.
// Plain JavaScript callers get an InvalidOptionError naming the option for a wrong type too
// (a Symbol, an object, null), never a TypeError from deep inside; the CLI passes its flag's
// name as the label, so each caller reads its own words.
import { InvalidOptionError } from './errors.js';
import { checkProbeOption } from '../probes/plan.js';
import { parseVersion } from '../probes/verdict.js';

export const DEFAULT_TIMEOUT_MS = 1000;
export const DEFAULT_PROBE_TIMEOUT_MS = 2000;

/** The whole-number options and their ranges. */
export const INTEGER_OPTIONS = {
  timeoutMs: [1, 3_600_000],
  concurrency: [1, 1_000_000],
  retries: [0, 10],
  threads: [1, 64],
  deadlineMs: [1, 86_400_000],
  probeTimeoutMs: [1, 600_000],
  redisTtlSeconds: [1, 31_536_000],
  // The watcher's (watchBackends, `watch`): durations in ms, counts.
  intervalMs: [100, 86_400_000],
  healthIntervalMs: [10, 86_400_000],
  failAfter: [1, 1000],
  recoverAfter: [1, 1000],
  forgetAfterMs: [1000, 31_536_000_000],
  settleMs: [0, 3_600_000],
  onChangeTimeoutMs: [100, 86_400_000],
  eventRingSize: [1, 1_000_000],
  heartbeatMs: [1000, 86_400_000],
  logMaxBytes: [1024, 1_000_000_000_000],
  logFiles: [1, 100],
} as const;
/** The integer options a scan itself takes (the rest belong to the resolver and the watcher). */
const SCAN_INTEGER_OPTIONS = [
  'timeoutMs',
  'concurrency',
  'retries',
  'threads',
  'deadlineMs',
  'probeTimeoutMs',
] as const;
export type IntegerOption = keyof typeof INTEGER_OPTIONS;

export const ENGINES = ['auto', 'native', 'js'] as const;
export const BACKENDS = ['auto', 'epoll', 'kqueue', 'poll'] as const;

/** A value as a message shows it: its text for numbers and strings, its kind otherwise. */
function shown(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  const kind = Array.isArray(value) ? 'array' : typeof value;
  return `${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind}`;
}

/** Unless undefined, `value` must be an integer in the option's range; `label` names it. */
export function checkIntegerOption(name: IntegerOption, value: unknown, label: string = name): void {
  if (value === undefined) return;
  const [min, max] = INTEGER_OPTIONS[name];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${label}: must be an integer ${min}..${max}, got ${shown(value)}`);
  }
}

/** A safety switch or flag: unless undefined, a real boolean (the string 'false' opens nothing). */
export function checkBooleanOption(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new InvalidOptionError(`${name}: must be true or false, got ${shown(value)}`);
  }
}

export function checkStringOption(name: string, value: unknown, maxBytes = 4096): void {
  if (value === undefined) return;
  if (typeof value !== 'string') throw new InvalidOptionError(`${name}: must be a string, got ${shown(value)}`);
  if (Buffer.byteLength(value) > maxBytes) throw new InvalidOptionError(`${name}: at most ${maxBytes} bytes`);
}

export function checkChoiceOption(name: string, value: unknown, choices: readonly string[]): void {
  if (value !== undefined && !choices.includes(value as string)) {
    const list = `${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}`;
    throw new InvalidOptionError(`${name}: must be ${list}, got ${shown(value)}`);
  }
}

export function checkSignalOption(value: unknown): void {
  if (value !== undefined && !(value instanceof AbortSignal)) {
    throw new InvalidOptionError(`signal: must be an AbortSignal, got ${shown(value)}`);
  }
}

/** A target list: a string, or an iterable of strings (targets and exclude). */
export function checkTargetListOption(name: string, value: unknown): void {
  if (value === undefined || typeof value === 'string') return;
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) {
    throw new InvalidOptionError(`${name}: must be a string or a list of strings, got ${shown(value)}`);
  }
}

function checkPortsOption(value: unknown): void {
  if (value === undefined || typeof value === 'string' || typeof value === 'number') return;
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'number')) {
    throw new InvalidOptionError(
      `ports: must be a number, a list of numbers or a string such as "50052,8000-8010", got ${shown(value)}`,
    );
  }
}

/** The explicit client version: the option, else $SCAN_BACKENDS_RPC_VERSION; checked. */
export function rpcVersionOption(options: { rpcVersion?: unknown }): string | undefined {
  if (options.rpcVersion === null) return undefined; // explicitly no client
  const fromEnv = options.rpcVersion === undefined;
  const value = fromEnv ? process.env.SCAN_BACKENDS_RPC_VERSION || undefined : options.rpcVersion;
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !parseVersion(value)) {
    const name = fromEnv ? '$SCAN_BACKENDS_RPC_VERSION' : 'rpcVersion';
    throw new InvalidOptionError(`${name}: must be "major.minor.patch", got ${shown(value)}`);
  }
  return value;
}

/** The options every target expansion takes (resolveTargets, scan). */
export function checkTargetOptions(options: unknown): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError(`options: must be an object, got ${shown(options)}`);
  }
  const o = options as Record<string, unknown>;
  checkPortsOption(o.ports);
  checkTargetListOption('exclude', o.exclude);
  checkBooleanOption('allowLarge', o.allowLarge);
  checkBooleanOption('allowPublic', o.allowPublic);
  checkBooleanOption('allowLinkLocal', o.allowLinkLocal);
  checkSignalOption(o.signal);
  if (o.lookup !== undefined && typeof o.lookup !== 'function') {
    throw new InvalidOptionError(`lookup: must be a function, got ${shown(o.lookup)}`);
  }
}

/** Every scan option, types and ranges; run when a scan is created, before any DNS. */
export function checkScanOptions(options: unknown): void {
  checkTargetOptions(options);
  if (options === undefined) return;
  const o = options as Record<string, unknown>;
  for (const name of SCAN_INTEGER_OPTIONS) checkIntegerOption(name, o[name]);
  if (o.rate !== undefined && !(typeof o.rate === 'number' && Number.isFinite(o.rate) && o.rate >= 0)) {
    throw new InvalidOptionError(`rate: must be a number >= 0 (0: unlimited), got ${shown(o.rate)}`);
  }
  checkChoiceOption('engine', o.engine, ENGINES);
  checkChoiceOption('backend', o.backend, BACKENDS);
  checkProbeOption(o.probe);
  checkStringOption('grpcService', o.grpcService, 1024);
  rpcVersionOption(o);
}
