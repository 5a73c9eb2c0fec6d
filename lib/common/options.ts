// Every option of the library in one leaf: its type, its range, its default. Each entry point
// (scan, probe, resolveTargets, resolveBackends, watchBackends, startDaemon, startServer, planFor) calls
// its normalize…() once, before any name is resolved or socket opened; below that nothing
// reads an environment variable or applies a default again. Plain JavaScript callers get an InvalidOptionError
// naming the option for a wrong type too (a Symbol, an object, null), never a TypeError from
// deep inside; the CLI passes its flag's name as the label, so each caller reads its own words.
// This module imports nothing outside lib/common/.
import { homedir } from 'node:os';
import { join } from 'node:path';

import { systemLookup, type LookupFn } from './addresses.js';
import { InvalidOptionError } from './errors.js';
import { parseVersion } from './version.js';

/** llama.cpp's rpc-server port: the default port of every target, list and probe. */
export const GGML_RPC_PORT = 50052;
const DEFAULT_TIMEOUT_MS = 1000;
/**
 * Adaptive timing's floor: above a LAN's sub-millisecond round trips and Wi-Fi's tens of ms;
 * a slower network raises the timeout above it through the estimator.
 */
export const DEFAULT_MIN_RTT_TIMEOUT_MS = 30;
const DEFAULT_PROBE_TIMEOUT_MS = 2000;

/** The whole-number options and their ranges. */
const INTEGER_OPTIONS = {
  timeoutMs: [1, 3_600_000],
  minRttTimeoutMs: [1, 3_600_000],
  maxRttTimeoutMs: [1, 3_600_000],
  concurrency: [1, 1_000_000],
  retries: [0, 10],
  threads: [1, 64],
  deadlineMs: [1, 86_400_000],
  probeTimeoutMs: [1, 600_000],
  redisTtlSeconds: [1, 31_536_000],
  dnsSdWaitMs: [10, 60_000],
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
  // A plan's (planFor, `plan`): 0 is the model's own context length, or no reserve.
  ctx: [0, 4_294_967_295],
  reserveBytes: [0, 2 ** 50],
  // The supervisor's (`run`): durations in ms, counts.
  minServers: [1, 10_000],
  readyTimeoutMs: [100, 86_400_000],
  unhealthyMs: [100, 86_400_000],
  stopGraceMs: [0, 600_000],
  maxRestarts: [1, 1000],
  stableMs: [0, 86_400_000],
  backoffMaxMs: [0, 3_600_000],
} as const;
/** The integer options a scan itself takes (the rest belong to the resolver and the watcher). */
const SCAN_INTEGER_OPTIONS = [
  'timeoutMs',
  'minRttTimeoutMs',
  'maxRttTimeoutMs',
  'concurrency',
  'retries',
  'threads',
  'deadlineMs',
  'probeTimeoutMs',
] as const;
export type IntegerOption = keyof typeof INTEGER_OPTIONS;

/** The range an integer option takes, for a caller that names it in its own units. */
export function integerRange(name: IntegerOption): readonly [number, number] {
  return INTEGER_OPTIONS[name];
}

export const ENGINES = ['auto', 'native', 'js'] as const;
/** How long a connect waits: a timeout from measured round trips, or one fixed timeout. */
export const TIMINGS = ['adaptive', 'fixed'] as const;
export type Timing = (typeof TIMINGS)[number];
export type EngineName = 'native' | 'js';
export type EngineChoice = (typeof ENGINES)[number];
/** The native engine's readiness mechanisms ('auto': epoll on Linux, kqueue on macOS/BSD, else poll). */
export const POLLERS = ['auto', 'epoll', 'kqueue', 'poll'] as const;
export type Poller = (typeof POLLERS)[number];
/** @deprecated The old name of Poller. */
export type PollerBackend = Poller;

export type ProbeName = 'ggml-rpc' | 'grpc' | 'http';
export const PROBE_NAMES: readonly ProbeName[] = ['ggml-rpc', 'grpc', 'http'];
/** 'auto' (probes chosen by port), probes named in order, or false (connect only). */
export type ProbeOption = 'auto' | readonly ProbeName[] | false;

/** Every source the resolver knows. */
export type SourceName = 'process' | 'config' | 'scan' | 'redis' | 'dns-sd';
export const SOURCE_NAMES: readonly SourceName[] = ['process', 'config', 'scan', 'redis', 'dns-sd'];
/**
 * The chain when none is named. dns-sd is asked for by name: it sends multicast queries and
 * takes addresses a neighbour announces, which a user who asked for a scan did not ask for.
 */
export const DEFAULT_SOURCES: readonly SourceName[] = ['process', 'config', 'scan', 'redis'];
/**
 * How long a one-shot resolve listens for DNS-SD answers: its two questions, a second apart,
 * and their answers (a responder multicasts a record at most once a second, RFC 6762 §6).
 */
export const DEFAULT_DNS_SD_WAIT_MS = 1500;

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
function checkBooleanOption(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new InvalidOptionError(`${name}: must be true or false, got ${shown(value)}`);
  }
}

function checkStringOption(name: string, value: unknown, maxBytes = 4096): void {
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

function checkSignalOption(value: unknown): void {
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

function checkProbeOption(option: unknown): asserts option is ProbeOption | undefined {
  if (option === undefined || option === false || option === 'auto') return;
  if (!Array.isArray(option) || option.length === 0) {
    throw new InvalidOptionError(`probe: must be 'auto', false or a list of ${PROBE_NAMES.join(', ')}`);
  }
  for (const name of option) {
    if (!PROBE_NAMES.includes(name as ProbeName)) {
      throw new InvalidOptionError(`probe: unknown probe "${String(name)}"; known: ${PROBE_NAMES.join(', ')}`);
    }
  }
  if (new Set(option).size !== option.length) throw new InvalidOptionError('probe: each probe may appear once');
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
function checkTargetOptions(options: unknown): void {
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
function checkScanOptions(options: unknown): void {
  checkTargetOptions(options);
  if (options === undefined) return;
  const o = options as Record<string, unknown>;
  for (const name of SCAN_INTEGER_OPTIONS) checkIntegerOption(name, o[name]);
  if (o.rate !== undefined && !(typeof o.rate === 'number' && Number.isFinite(o.rate) && o.rate >= 0)) {
    throw new InvalidOptionError(`rate: must be a number >= 0 (0: unlimited), got ${shown(o.rate)}`);
  }
  checkChoiceOption('engine', o.engine, ENGINES);
  checkChoiceOption('poller', o.poller, POLLERS);
  checkChoiceOption('backend', o.backend, POLLERS);
  if (o.poller !== undefined && o.backend !== undefined && o.poller !== o.backend) {
    throw new InvalidOptionError(
      `backend: the old name of poller; give one (poller ${shown(o.poller)}, backend ${shown(o.backend)})`,
    );
  }
  checkProbeOption(o.probe);
  checkStringOption('grpcService', o.grpcService, 1024);
  rpcVersionOption(o);
}

// ---- targets and scans ----

export interface TargetOptions {
  /** Port list: numbers, or the grammar "50052", "50052,11434", "8000-8010". Default 50052. */
  ports?: number | readonly number[] | string;
  /** Addresses to leave out, in the target grammar. */
  exclude?: string | readonly string[];
  /** Allow more than 65,536 host:port pairs. */
  allowLarge?: boolean;
  /** Allow addresses outside private, loopback, link-local, CGNAT and ULA space. */
  allowPublic?: boolean;
  /**
   * false refuses link-local and cloud-metadata addresses (isLinkLocal). A scan of targets the
   * user typed allows them (default true); the resolver passes false unless told otherwise.
   */
  allowLinkLocal?: boolean;
  /** Name resolution; defaults to the system resolver (every address kept). */
  lookup?: LookupFn;
  /** Stops a long expansion (a list of thousands of addresses) between steps. */
  signal?: AbortSignal;
}

/** How long each connect waits; the scan's, the resolver's and the watcher's. */
export interface TimingOptions {
  /**
   * 'adaptive' (default): each connect's timeout follows the round trips measured so far
   * (RFC 6298), between minRttTimeoutMs and maxRttTimeoutMs, the ceiling until a first answer;
   * one given up early is tried again. 'fixed': every attempt waits timeoutMs. Giving
   * timeoutMs alone means 'fixed', as it always did.
   */
  timing?: Timing;
  /** Fixed timing: the timeout per attempt, ms (default 1000). Adaptive: the ceiling. */
  timeoutMs?: number;
  /** Adaptive timing's floor, ms. Default 30. */
  minRttTimeoutMs?: number;
  /** Adaptive timing's ceiling, ms. Default timeoutMs, else 1000. */
  maxRttTimeoutMs?: number;
}

/** Timing options with every default filled: timeoutMs is the fixed timeout or the ceiling. */
export interface TimingSettings {
  timing: Timing;
  timeoutMs: number;
  /** The floor; equal to timeoutMs under fixed timing. */
  minRttTimeoutMs: number;
}

/** The connect timing a scan ran with and ended at, as its JSON reports it. */
export interface ScanTiming {
  mode: Timing;
  floorMs: number;
  ceilingMs: number;
  /** The smoothed round trip and its variation, ms; null when no connect was answered. */
  srttMs: number | null;
  rttvarMs: number | null;
  /** A first attempt's timeout at the end, ms. */
  timeoutMs: number;
  /** Attempts started again after a timeout. */
  retried: number;
}

export interface ScanOptions extends TargetOptions, TimingOptions {
  /** Sockets in flight at once. Default: what RLIMIT_NOFILE allows, capped at 16,384. */
  concurrency?: number;
  /**
   * Extra attempts for targets that stayed silent. Default 0 under fixed timing; 1 under
   * adaptive timing, which retries only a connect given up before the ceiling.
   */
  retries?: number;
  /** New connects per second. Default 0: unlimited. */
  rate?: number;
  /** A deadline for the whole scan, ms; reaching it rejects with an AbortError. */
  deadlineMs?: number;
  /** 'auto' (default; env SCAN_BACKENDS_ENGINE) uses the addon and falls back to 'js'. */
  engine?: EngineChoice;
  /** Native scan threads. Default: one, or one per core from 4,096 targets. */
  threads?: number;
  /** The native engine's readiness mechanism. Default 'auto': epoll, kqueue, else poll. */
  poller?: Poller;
  /** @deprecated The old name of `poller`; still accepted. */
  backend?: Poller;
  /**
   * Tell what answers on each open port: 'auto' picks probes by port (50052: ggml-rpc then
   * gRPC; 11434: Ollama; others: HTTP, gRPC, ggml-rpc), or name them in order. Default off.
   */
  probe?: ProbeOption;
  /** Each probe step's deadline, ms. Default 2000. */
  probeTimeoutMs?: number;
  /** The service the gRPC health check asks about. Default "": the whole server. */
  grpcService?: string;
  /**
   * The coordinator's ggml-rpc protocol, "x.y.z": compatibility is judged against it exactly as
   * llama.cpp does. Default $SCAN_BACKENDS_RPC_VERSION; without either, each server reports
   * the clients that can use it (`rpc.usableBy`) and none is called incompatible. null: no
   * client, whatever $SCAN_BACKENDS_RPC_VERSION says (a watcher's health checks: a server of
   * another protocol is alive all the same).
   */
  rpcVersion?: string | null;
}

export interface ProbeOptions extends Omit<ScanOptions, 'ports' | 'exclude' | 'probe'> {
  /** Which probe, or probes in order; default 'auto' (chosen by port). */
  service?: 'auto' | ProbeName | readonly ProbeName[];
}

/** Target options with their defaults filled. */
export interface TargetSettings extends TargetOptions {
  lookup: LookupFn;
}

/** A scan's options after normalizeScanOptions: every default the library knows before I/O. */
export interface ScanSettings extends TargetSettings, TimingSettings {
  retries: number;
  rate: number;
  probeTimeoutMs: number;
  grpcService: string;
  engine: EngineChoice;
  poller: Poller;
  probe: ProbeOption;
  /** The client version, from the option or the environment; undefined: no client. */
  rpcVersion: string | undefined;
  /** Undefined: from the descriptor limit when the scan starts (the only defaults left to it). */
  concurrency?: number;
  /** Undefined: one, or one per core for a large job, when the scan starts. */
  threads?: number;
  deadlineMs?: number;
}

/** Checks target options and fills their defaults (resolveTargets, and every scan). */
export function normalizeTargetOptions(options: TargetOptions = {}): TargetSettings {
  checkTargetOptions(options);
  return { ...options, lookup: lookupOption(options.lookup) };
}

/** Name resolution: the one given, else the system's (scans and resolves alike). */
function lookupOption(lookup: LookupFn | undefined): LookupFn {
  return lookup ?? systemLookup;
}

/** The connect timing and probe deadline every scan, resolve and watch runs with; checked. */
function deadlineOptions(options: TimingOptions & { probeTimeoutMs?: number }): TimingSettings & {
  probeTimeoutMs: number;
} {
  checkChoiceOption('timing', options.timing, TIMINGS);
  for (const name of ['timeoutMs', 'minRttTimeoutMs', 'maxRttTimeoutMs'] as const)
    checkIntegerOption(name, options[name]);
  const { timeoutMs, minRttTimeoutMs, maxRttTimeoutMs } = options;
  const probeTimeoutMs = options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  // An explicit timeout alone keeps the meaning it always had: one fixed timeout per attempt;
  // beside a floor or a ceiling it is adaptive timing's ceiling.
  const alone = minRttTimeoutMs === undefined && maxRttTimeoutMs === undefined;
  const timing = options.timing ?? (timeoutMs !== undefined && alone ? 'fixed' : 'adaptive');
  if (timing === 'fixed') {
    const fixed = timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // A floor or ceiling other than the timeout itself means nothing here (settings handed on,
    // whose floor is the fixed timeout, pass).
    for (const [name, value] of [
      ['minRttTimeoutMs (--min-rtt-timeout)', minRttTimeoutMs],
      ['maxRttTimeoutMs (--max-rtt-timeout)', maxRttTimeoutMs],
    ] as const) {
      if (value !== undefined && value !== fixed) {
        throw new InvalidOptionError(
          `${name}: only with adaptive timing; fixed timing (timeoutMs, --timeout, alone) waits the timeout`,
        );
      }
    }
    return { timing, timeoutMs: fixed, minRttTimeoutMs: fixed, probeTimeoutMs };
  }
  if (timeoutMs !== undefined && maxRttTimeoutMs !== undefined && timeoutMs !== maxRttTimeoutMs) {
    throw new InvalidOptionError(
      `maxRttTimeoutMs (--max-rtt-timeout): the ceiling, also given as timeoutMs (--timeout): ${maxRttTimeoutMs} ≠ ${timeoutMs}; give one`,
    );
  }
  const ceiling = maxRttTimeoutMs ?? timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const floor = minRttTimeoutMs ?? Math.min(DEFAULT_MIN_RTT_TIMEOUT_MS, ceiling);
  if (floor > ceiling) {
    throw new InvalidOptionError(
      `minRttTimeoutMs (--min-rtt-timeout): the floor (${floor} ms) must not exceed the ceiling (${ceiling} ms)`,
    );
  }
  return { timing, timeoutMs: ceiling, minRttTimeoutMs: floor, probeTimeoutMs };
}

/** The engine asked for: the option, else $SCAN_BACKENDS_ENGINE, else 'auto'; checked. */
export function engineOption(choice: unknown): EngineChoice {
  const fromEnv = choice === undefined && Boolean(process.env.SCAN_BACKENDS_ENGINE);
  const label = fromEnv ? '$SCAN_BACKENDS_ENGINE' : 'engine';
  const engine = fromEnv ? process.env.SCAN_BACKENDS_ENGINE : (choice ?? 'auto');
  checkChoiceOption(label, engine, ENGINES);
  return engine as EngineChoice;
}

let backendWarned = false;
/** The old name of `poller`, still accepted, with one deprecation warning per process. */
function deprecatedBackend(backend: Poller | undefined): Poller | undefined {
  if (backend !== undefined && !backendWarned) {
    backendWarned = true;
    process.emitWarning('the scan option `backend` is now `poller`', 'DeprecationWarning', 'SCAN_BACKENDS_BACKEND');
  }
  return backend;
}

/** Checks every scan option and fills every default; the scan's only reader of options. */
export function normalizeScanOptions(options: ScanOptions = {}): ScanSettings {
  checkScanOptions(options);
  const engine = engineOption(options.engine);
  const timing = deadlineOptions(options);
  return {
    ...normalizeTargetOptions(options),
    ...timing,
    retries: options.retries ?? (timing.timing === 'adaptive' ? 1 : 0),
    rate: options.rate ?? 0,
    grpcService: options.grpcService ?? '',
    engine,
    poller: options.poller ?? deprecatedBackend(options.backend) ?? 'auto',
    probe: options.probe ?? false,
    rpcVersion: rpcVersionOption(options),
  };
}

// ---- the resolver ----

export const DEFAULT_REDIS_TTL_SECONDS = 300;
const CONFIG_NAME = 'rpc_backends.conf';

export interface ResolveOptions extends TimingOptions {
  /** Sources in order. Default: process, config, scan, redis (dns-sd only when named). */
  sources?: readonly SourceName[];
  /** DNS-SD service types the dns-sd source browses; default _ggml-rpc._tcp, _llama-rpc._tcp. */
  dnsSdTypes?: readonly string[];
  /** How long a one-shot dns-sd source listens (default 1500 ms); a watcher browses continuously. */
  dnsSdWaitMs?: number;
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
  probeTimeoutMs?: number;
  /**
   * The coordinator's ggml-rpc protocol: servers are judged against it exactly as llama.cpp
   * does. Default $SCAN_BACKENDS_RPC_VERSION, then the config file's `rpc-version` line;
   * without any, the servers one client can use together are kept (see `compatibility`).
   */
  rpcVersion?: string;
  engine?: EngineChoice;
  signal?: AbortSignal;
  /** Name resolution for candidates; default the system resolver. */
  lookup?: LookupFn;
}

/** A resolve's options after normalizeResolveOptions. */
export interface ResolveSettings extends Omit<ResolveOptions, keyof TimingSettings>, TimingSettings {
  sources: readonly SourceName[];
  merge: boolean;
  verify: boolean;
  strict: boolean;
  requireRedis: boolean;
  allowPublic: boolean;
  allowLinkLocal: boolean;
  acceptSilent: boolean;
  trustAllUsers: boolean;
  /** Where the config file is looked for, first match wins. */
  configSearch: string[];
  /** From the option or $SCAN_BACKENDS_REDIS; undefined: no Redis. */
  redisUrl: string | undefined;
  redisTtlSeconds: number;
  dnsSdWaitMs: number;
  probeTimeoutMs: number;
  /** The option, else $SCAN_BACKENDS_ENGINE, else 'auto'. */
  engine: EngineChoice;
  /** From the option or $SCAN_BACKENDS_RPC_VERSION (the config file's line comes later). */
  rpcVersion: string | undefined;
  lookup: LookupFn;
}

/** The URL with any password hidden, for messages. */
export function redactUrl(url: string): string {
  return url.replace(
    /\/\/([^@/]*)@/,
    (_, auth: string) => `//${auth.includes(':') ? `${auth.split(':')[0]}:***` : '***'}@`,
  );
}

/** Where the config file is looked for, first match wins. */
export function configSearchPath(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  if (explicit) return [explicit];
  const xdg = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return [
    ...(env.SCAN_BACKENDS_CONFIG ? [env.SCAN_BACKENDS_CONFIG] : []),
    join(process.cwd(), CONFIG_NAME),
    join(xdg, 'scan-backends', CONFIG_NAME),
    join('/etc/scan-backends', CONFIG_NAME),
  ];
}

/** The Redis URL: the option, else $SCAN_BACKENDS_REDIS; checked. */
export function redisUrlOption(explicit: string | undefined): string | undefined {
  const url = explicit ?? (process.env.SCAN_BACKENDS_REDIS || undefined);
  if (url !== undefined && !/^rediss?:\/\//.test(url)) {
    throw new InvalidOptionError(
      explicit === undefined
        ? `$SCAN_BACKENDS_REDIS: must be redis://host:port, got "${redactUrl(url)}"`
        : `redisUrl: must be redis://host:port or rediss://…, got "${redactUrl(url)}"`,
    );
  }
  return url;
}

/** The resolver's own options, through the same checks as a scan's; every default filled. */
export function normalizeResolveOptions(options: ResolveOptions = {}): ResolveSettings {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options: must be an object');
  const sources = options.sources ?? DEFAULT_SOURCES;
  if (!Array.isArray(sources) || sources.length === 0) {
    throw new InvalidOptionError(`sources: must be a non-empty list of ${SOURCE_NAMES.join(', ')}`);
  }
  for (const s of sources) checkChoiceOption('sources', s, SOURCE_NAMES);
  for (const name of [
    'merge',
    'verify',
    'strict',
    'requireRedis',
    'allowPublic',
    'allowLinkLocal',
    'acceptSilent',
    'trustAllUsers',
  ] as const) {
    checkBooleanOption(name, options[name]);
  }
  for (const name of ['probeTimeoutMs', 'redisTtlSeconds', 'dnsSdWaitMs'] as const)
    checkIntegerOption(name, options[name]);
  const dnsSdTypes = options.dnsSdTypes;
  if (dnsSdTypes !== undefined && (!Array.isArray(dnsSdTypes) || dnsSdTypes.length === 0 || dnsSdTypes.length > 16)) {
    throw new InvalidOptionError('dnsSdTypes: must be a list of 1..16 service types such as "_ggml-rpc._tcp"');
  }
  for (const t of dnsSdTypes ?? []) {
    if (typeof t !== 'string' || !/^_[A-Za-z0-9-]{1,15}\._(tcp|udp)(\.local\.?)?$/.test(t)) {
      throw new InvalidOptionError(`dnsSdTypes: expected a service type such as "_ggml-rpc._tcp", got ${shown(t)}`);
    }
  }
  for (const name of ['configPath', 'redisUrl', 'redisPrefix', 'rpcVersion'] as const)
    checkStringOption(name, options[name]);
  checkSignalOption(options.signal);
  checkTargetListOption('subnet', options.subnet);
  return {
    ...options,
    sources,
    merge: options.merge === true,
    verify: options.verify ?? true,
    strict: options.strict === true,
    requireRedis: options.requireRedis === true,
    allowPublic: options.allowPublic === true,
    allowLinkLocal: options.allowLinkLocal === true,
    acceptSilent: options.acceptSilent === true,
    trustAllUsers: options.trustAllUsers === true,
    configSearch: configSearchPath(options.configPath),
    redisUrl: redisUrlOption(options.redisUrl),
    redisTtlSeconds: options.redisTtlSeconds ?? DEFAULT_REDIS_TTL_SECONDS,
    dnsSdWaitMs: options.dnsSdWaitMs ?? DEFAULT_DNS_SD_WAIT_MS,
    ...deadlineOptions(options),
    engine: engineOption(options.engine),
    rpcVersion: rpcVersionOption(options),
    lookup: lookupOption(options.lookup),
  };
}

// ---- watch ----
// The watcher's options (watchBackends, the watch and serve commands) extend the resolver's.
// The Watcher runs normalizeWatchOptions() once, in its constructor, and keeps what it returns
// as `watcher.settings`.

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
  | 'timing'
  | 'timeoutMs'
  | 'minRttTimeoutMs'
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
  readonly timing: Timing;
  readonly timeoutMs: number;
  readonly minRttTimeoutMs: number;
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

/** The resolver's checks and defaults, then the watcher's own: every default filled once. */
export function normalizeWatchOptions(options: WatchOptions): WatchSettings {
  const resolve = normalizeResolveOptions(options);
  for (const name of WATCH_INTEGER_OPTIONS) checkIntegerOption(name, options[name]);
  if (options.fleetKey !== undefined && !(Buffer.isBuffer(options.fleetKey) && options.fleetKey.length >= 16)) {
    throw new InvalidOptionError('fleetKey: must be a Buffer of at least 16 bytes');
  }
  const fraction = options.freeMemoryFraction;
  if (fraction !== undefined && !(typeof fraction === 'number' && fraction > 0 && fraction <= 1)) {
    throw new InvalidOptionError(`freeMemoryFraction: must be a number in (0, 1], got ${String(fraction)}`);
  }
  return Object.freeze({
    ...resolve,
    intervalMs: options.intervalMs ?? WATCH_DEFAULTS.intervalMs,
    healthIntervalMs: options.healthIntervalMs ?? WATCH_DEFAULTS.healthIntervalMs,
    failAfter: options.failAfter ?? WATCH_DEFAULTS.failAfter,
    recoverAfter: options.recoverAfter ?? WATCH_DEFAULTS.recoverAfter,
    forgetAfterMs: options.forgetAfterMs ?? WATCH_DEFAULTS.forgetAfterMs,
    eventRingSize: options.eventRingSize ?? WATCH_DEFAULTS.eventRingSize,
    freeMemoryFraction: options.freeMemoryFraction ?? WATCH_DEFAULTS.freeMemoryFraction,
    rpcVersion: resolve.rpcVersion ?? null,
  });
}

// ---- daemons (watch, serve) ----

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const DEFAULT_LOG_MAX_BYTES = 50 * 1024 * 1024;
const DEFAULT_LOG_FILES = 5;
/** How long the usable set must hold still before --on-change runs. */
const DEFAULT_SETTLE_MS = 5000;
const DEFAULT_ON_CHANGE_TIMEOUT_MS = 60_000;
/** How often a daemon logs that it is alive. */
const DEFAULT_HEARTBEAT_MS = 3_600_000;

/** What the owner of a daemon tunes: its log, its --on-change command, its heartbeat, its end. */
export interface DaemonTuning {
  /** Log to this file, rotated by size; else JSON lines on stdout (on a terminal: text on stderr). */
  logFile?: string;
  logMaxBytes?: number;
  logFiles?: number;
  logLevel?: LogLevel;
  /** Run this command (no shell) when the usable set changes, once it has settled. */
  onChange?: { argv: readonly string[]; settleMs?: number; timeoutMs?: number };
  heartbeatMs?: number;
  /** Stop at this time, as a signal does. */
  until?: Date;
}

export interface DaemonSettings extends DaemonTuning {
  logMaxBytes: number;
  logFiles: number;
  logLevel: LogLevel;
  onChange?: { argv: readonly string[]; settleMs: number; timeoutMs: number };
  heartbeatMs: number;
}

/** A daemon's tuning with every default filled. */
export function normalizeDaemonOptions<T extends DaemonTuning>(options: T): T & DaemonSettings {
  const { onChange } = options;
  return {
    ...options,
    logMaxBytes: options.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES,
    logFiles: options.logFiles ?? DEFAULT_LOG_FILES,
    logLevel: options.logLevel ?? 'info',
    onChange: onChange && {
      argv: onChange.argv,
      settleMs: onChange.settleMs ?? DEFAULT_SETTLE_MS,
      timeoutMs: onChange.timeoutMs ?? DEFAULT_ON_CHANGE_TIMEOUT_MS,
    },
    heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
  };
}

// ---- serve ----

export const DEFAULT_LISTEN = '127.0.0.1:8765';
const DEFAULT_MAX_SSE_CLIENTS = 100;
/** The ports HTTP discovery probes for llama-server and vLLM endpoints. */
export const DEFAULT_HTTP_PORTS: readonly number[] = [8080, 8000];

export interface ServeTuning {
  /** Host names answered besides loopback's and the listen host (--allow-host). */
  allowHosts?: readonly string[];
  maxSseClients?: number;
}

/** serve's token when none is given in a file: $SCAN_BACKENDS_TOKEN. */
export function environmentToken(): string | undefined {
  return process.env.SCAN_BACKENDS_TOKEN || undefined;
}

/** serve's tuning with every default filled. */
export function normalizeServeOptions<T extends ServeTuning>(
  options: T,
): T & { allowHosts: readonly string[]; maxSseClients: number } {
  return {
    ...options,
    allowHosts: options.allowHosts ?? [],
    maxSseClients: options.maxSseClients ?? DEFAULT_MAX_SSE_CLIENTS,
  };
}

// ---- plan ----

/** The KV cache types a plan knows, as llama-server's --cache-type-k/-v name them. */
export const CACHE_TYPES = ['f16', 'q8_0', 'q4_0'] as const;
/**
 * Kept free on each device that gets layers, for what the plan does not count: llama.cpp's
 * compute buffer (13-19 MiB for a tiny model at -c 2048, growing with context and model width).
 */
export const DEFAULT_RESERVE_BYTES = 512 * 2 ** 20;

export interface PlanOptions {
  /** Context size; 0 or undefined: the model's context_length, as llama-server without -c. */
  ctx?: number;
  /** KV cache type. Default f16. */
  cacheType?: (typeof CACHE_TYPES)[number];
  /** Bytes kept free on each device that gets layers. Default 512 MiB. */
  reserveBytes?: number;
}

export type PlanSettings = Required<PlanOptions>;

/** A plan's options, checked, with every default filled. */
export function normalizePlanOptions(options: PlanOptions = {}): PlanSettings {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options: must be an object');
  checkIntegerOption('ctx', options.ctx);
  checkIntegerOption('reserveBytes', options.reserveBytes);
  checkChoiceOption('cacheType', options.cacheType, CACHE_TYPES);
  return {
    ctx: options.ctx ?? 0,
    cacheType: options.cacheType ?? 'f16',
    reserveBytes: options.reserveBytes ?? DEFAULT_RESERVE_BYTES,
  };
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  kb: 1e3,
  m: 2 ** 20,
  mib: 2 ** 20,
  mb: 1e6,
  g: 2 ** 30,
  gib: 2 ** 30,
  gb: 1e9,
  t: 2 ** 40,
  tib: 2 ** 40,
  tb: 1e12,
};

/**
 * A size as people write it: "512MiB", "1GiB", "1.5G" (binary), "2GB" (decimal), "0"; a bare
 * number is bytes. `label` names it in the message.
 */
export function parseSize(label: string, text: string): number {
  const match = /^([0-9]{1,16}(?:\.[0-9]{1,6})?) ?([a-z]{0,3})$/i.exec(text.trim());
  const unit = match ? SIZE_UNITS[(match[2] as string).toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    throw new InvalidOptionError(`${label}: expected a size such as 512MiB, 1GiB or 0, got ${shown(text)}`);
  }
  return Math.round(Number(match[1]) * unit);
}

// ---- run (the coordinator supervisor) ----

export const GROW_POLICIES = ['idle', 'always', 'never'] as const;
/** When a coordinator is restarted to take servers that returned or appeared. */
export type GrowPolicy = (typeof GROW_POLICIES)[number];

/** The supervisor's tuning; the watcher's options are its own. */
export interface RunTuning {
  /** Start once this many servers are usable (without a plan to say what fits). */
  minServers?: number;
  grow?: GrowPolicy;
  /** The coordinator's health endpoint; undefined: from its --host/--port (llama-server's). */
  healthUrl?: string;
  /** Not ready this long after its start: restarted. */
  readyTimeoutMs?: number;
  /** Unhealthy this long, once it was ready: restarted. */
  unhealthyMs?: number;
  /** SIGTERM, then SIGKILL this long after. */
  stopGraceMs?: number;
  /** Failed starts in a row (no ready child that lasted stableMs between) before giving up. */
  maxRestarts?: number;
  /** Ready this long: its failures are forgotten. */
  stableMs?: number;
  /** The longest wait between failed starts (they double from 1 s). */
  backoffMaxMs?: number;
  /** With grow 'idle', when idleness cannot be told: restart after the set held still this long. */
  settleMs?: number;
}

export type RunSettings = Required<Omit<RunTuning, 'healthUrl'>> & Pick<RunTuning, 'healthUrl'>;

export const RUN_DEFAULTS: Readonly<Omit<RunSettings, 'healthUrl'>> = Object.freeze({
  minServers: 1,
  grow: 'idle',
  readyTimeoutMs: 600_000,
  unhealthyMs: 30_000,
  stopGraceMs: 5_000,
  maxRestarts: 5,
  stableMs: 60_000,
  backoffMaxMs: 30_000,
  settleMs: DEFAULT_SETTLE_MS,
});

const RUN_INTEGER_OPTIONS = [
  'minServers',
  'readyTimeoutMs',
  'unhealthyMs',
  'stopGraceMs',
  'maxRestarts',
  'stableMs',
  'backoffMaxMs',
  'settleMs',
] as const;

/** The supervisor's tuning with every default filled; an http(s) health URL or none. */
export function normalizeRunOptions(options: RunTuning): RunSettings {
  for (const name of RUN_INTEGER_OPTIONS) checkIntegerOption(name, options[name]);
  checkChoiceOption('grow', options.grow, GROW_POLICIES);
  checkStringOption('healthUrl', options.healthUrl);
  if (options.healthUrl !== undefined && !/^https?:\/\/[^/\s]+(\/\S*)?$/.test(options.healthUrl)) {
    throw new InvalidOptionError(`healthUrl: must be an http:// or https:// URL, got ${shown(options.healthUrl)}`);
  }
  const settings: RunSettings = { ...RUN_DEFAULTS };
  for (const name of RUN_INTEGER_OPTIONS) settings[name] = options[name] ?? RUN_DEFAULTS[name];
  settings.grow = options.grow ?? RUN_DEFAULTS.grow;
  if (options.healthUrl !== undefined) settings.healthUrl = options.healthUrl;
  return Object.freeze(settings);
}
