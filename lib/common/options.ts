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

// ---- watch ----
// The watcher's options (watchBackends, the watch and serve commands) and the resolver's they
// extend: types and defaults. normalizeWatchOptions() is the watcher's one normaliser: the
// Watcher runs it once, in its constructor, after the resolver's own checks
// (checkResolveOptions), and keeps what it returns as `watcher.settings`. Every default is
// filled there, the environment read there; nothing below applies one or reads it again.
// This section imports nothing outside lib/common/ (its import sits here, to keep it whole).
import { systemLookup, type LookupFn } from './addresses.js';

/** The resolver's sources, in the default chain order. */
export type SourceName = 'process' | 'config' | 'scan' | 'redis';
export const SOURCE_NAMES: readonly SourceName[] = ['process', 'config', 'scan', 'redis'];

export interface ResolveOptions {
  /** Sources in order. Default: process, config, scan, redis. */
  sources?: readonly SourceName[];
  /** Union of all sources instead of the first that yields a live backend. */
  merge?: boolean;
  /** Default true; false returns candidates marked `verified: false`. */
  verify?: boolean;
  /** Config file; default $SCAN_BACKENDS_CONFIG, ./rpc_backends.conf, $XDG_CONFIG_HOME/…, /etc/…. */
  configPath?: string;
  /** A bad config line is an error instead of a warning. */
  strict?: boolean;
  /** What the scan source scans (target grammar); default the local private subnets. */
  subnet?: string | readonly string[];
  /** Ports for the scan source; default 50052. */
  ports?: number | readonly number[] | string;
  /** Redis URL; default $SCAN_BACKENDS_REDIS. Without one the redis source is skipped. */
  redisUrl?: string;
  redisPrefix?: string;
  redisTtlSeconds?: number;
  /** Redis down is an error (SourceUnavailableError) instead of a note. */
  requireRedis?: boolean;
  /** Connect to candidates outside private, loopback, link-local, CGNAT and ULA space. */
  allowPublic?: boolean;
  /**
   * Connect to link-local and cloud-metadata addresses (169.254.0.0/16, fe80::/10,
   * fd00:ec2::254): never a candidate from any source without it.
   */
  allowLinkLocal?: boolean;
  /** Keep a silent port that no witness vouches for, marked unverified (a guess). */
  acceptSilent?: boolean;
  /** Count coordinators of every user, not only this user's and root's. */
  trustAllUsers?: boolean;
  timeoutMs?: number;
  probeTimeoutMs?: number;
  /**
   * The coordinator's ggml-rpc protocol: servers are judged against it exactly as llama.cpp
   * does. Default $SCAN_BACKENDS_RPC_VERSION, then the config file's `rpc-version` line;
   * without any, the servers one client can use together are kept (see `compatibility`).
   */
  rpcVersion?: string;
  engine?: (typeof ENGINES)[number];
  signal?: AbortSignal;
  /** Name resolution for candidates; default the system resolver. */
  lookup?: LookupFn;
}

export const WATCH_DEFAULTS = {
  intervalMs: 30_000,
  healthIntervalMs: 5_000,
  failAfter: 3,
  recoverAfter: 2,
  forgetAfterMs: 600_000,
  eventRingSize: 1000,
  freeMemoryFraction: 0.1,
} as const;

export interface WatchOptions extends ResolveOptions {
  /** Re-resolve through the chain this often, ms. Default 30 s. */
  intervalMs?: number;
  /** Health-check every followed backend this often between resolves, ms. Default 5 s. */
  healthIntervalMs?: number;
  /** Failed checks in a row that make a backend `down`. Default 3. */
  failAfter?: number;
  /** Good checks in a row that bring it back `up`. Default 2. */
  recoverAfter?: number;
  /** A backend down this long leaves the view (`removed`), ms. Default 10 min. */
  forgetAfterMs?: number;
  /** Events kept for consumers that resume from an id. Default 1000. */
  eventRingSize?: number;
  /** A device's free memory moving by this fraction of its total is a `changed`. Default 0.1. */
  freeMemoryFraction?: number;
  /**
   * The shared secret of the watchers on one Redis (at least 16 bytes): what they write is
   * signed with it, and what is not signed with it is ignored.
   */
  fleetKey?: Buffer;
  /** Aborting it closes the watcher. */
  signal?: AbortSignal;
}

/** The options normalizeWatchOptions fills; the rest pass through as given. */
type FilledWatchOption =
  | keyof typeof WATCH_DEFAULTS
  | 'sources'
  | 'merge'
  | 'verify'
  | 'strict'
  | 'requireRedis'
  | 'allowPublic'
  | 'allowLinkLocal'
  | 'acceptSilent'
  | 'trustAllUsers'
  | 'timeoutMs'
  | 'probeTimeoutMs'
  | 'redisUrl'
  | 'rpcVersion'
  | 'lookup';

/** A watcher's options with every default filled in: what the watcher and its rooms read. */
export type WatchSettings = Readonly<Omit<WatchOptions, FilledWatchOption>> & {
  readonly [K in keyof typeof WATCH_DEFAULTS]: number;
} & {
  readonly sources: readonly SourceName[];
  readonly merge: boolean;
  readonly verify: boolean;
  readonly strict: boolean;
  readonly requireRedis: boolean;
  readonly allowPublic: boolean;
  readonly allowLinkLocal: boolean;
  readonly acceptSilent: boolean;
  readonly trustAllUsers: boolean;
  readonly timeoutMs: number;
  readonly probeTimeoutMs: number;
  /** The option, else $SCAN_BACKENDS_REDIS; undefined: no Redis (no fleet, no redis source). */
  readonly redisUrl: string | undefined;
  /**
   * The client version: the option, else $SCAN_BACKENDS_RPC_VERSION; null when neither names
   * one (the config file's `rpc-version` line may, on each read).
   */
  readonly rpcVersion: string | null;
  readonly lookup: LookupFn;
};

/** The watcher's integer options (the resolver checks its own). */
const WATCH_INTEGER_OPTIONS = [
  'intervalMs',
  'healthIntervalMs',
  'failAfter',
  'recoverAfter',
  'forgetAfterMs',
  'eventRingSize',
] as const;

/**
 * The watcher's own checks, then every default filled once. Runs after checkResolveOptions
 * (the resolver's checks, which also refuse a non-object), before any I/O; a bad option
 * fails here, not every cycle.
 */
export function normalizeWatchOptions(options: WatchOptions): WatchSettings {
  for (const name of WATCH_INTEGER_OPTIONS) checkIntegerOption(name, options[name]);
  if (options.fleetKey !== undefined && !(Buffer.isBuffer(options.fleetKey) && options.fleetKey.length >= 16)) {
    throw new InvalidOptionError('fleetKey: must be a Buffer of at least 16 bytes');
  }
  const fraction = options.freeMemoryFraction;
  if (fraction !== undefined && !(typeof fraction === 'number' && fraction > 0 && fraction <= 1)) {
    throw new InvalidOptionError(`freeMemoryFraction: must be a number in (0, 1], got ${String(fraction)}`);
  }
  const rpcVersion = rpcVersionOption(options) ?? null;
  return Object.freeze({
    ...options,
    intervalMs: options.intervalMs ?? WATCH_DEFAULTS.intervalMs,
    healthIntervalMs: options.healthIntervalMs ?? WATCH_DEFAULTS.healthIntervalMs,
    failAfter: options.failAfter ?? WATCH_DEFAULTS.failAfter,
    recoverAfter: options.recoverAfter ?? WATCH_DEFAULTS.recoverAfter,
    forgetAfterMs: options.forgetAfterMs ?? WATCH_DEFAULTS.forgetAfterMs,
    eventRingSize: options.eventRingSize ?? WATCH_DEFAULTS.eventRingSize,
    freeMemoryFraction: options.freeMemoryFraction ?? WATCH_DEFAULTS.freeMemoryFraction,
    sources: options.sources ?? SOURCE_NAMES,
    merge: options.merge === true,
    verify: options.verify ?? true,
    strict: options.strict === true,
    requireRedis: options.requireRedis === true,
    allowPublic: options.allowPublic === true,
    allowLinkLocal: options.allowLinkLocal === true,
    acceptSilent: options.acceptSilent === true,
    trustAllUsers: options.trustAllUsers === true,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    probeTimeoutMs: options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
    redisUrl: options.redisUrl ?? (process.env.SCAN_BACKENDS_REDIS || undefined),
    rpcVersion,
    lookup: options.lookup ?? systemLookup,
  });
}
