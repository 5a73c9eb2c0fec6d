// `scan-backends watch`: the resolver as a daemon. Events on stdout (NDJSON, or a line each
// on a terminal), pino logs, --on-change, systemd notify and watchdog, a heartbeat, and a
// shutdown that always ends: SIGTERM/SIGINT or --until stop it within 10 s, exit 0. This
// module maps the flags to the watcher's and the daemon's options; lib/daemon/ runs them.

import { formatHostPort } from '../common/host-port.js';
import { checkIntegerOption, LOG_LEVELS, type LogLevel } from '../common/options.js';
import { terminalSafe } from '../common/peer-text.js';
import { startDaemon, type Daemon, type DaemonOptions } from '../daemon/daemon.js';
import { splitCommand } from '../daemon/on-change.js';
import type { WatchEvent } from '../watch/types.js';
import { Watcher, type WatchOptions } from '../watch/watcher.js';
import { UsageError } from './exit-codes.js';
import {
  DURATION_FLAG,
  FILE_FLAG,
  formatFlag,
  parseDuration,
  parseFlags,
  parseFormat,
  parseInteger,
  readSecretFile,
} from './flags.js';
import { RESOLVE_FLAGS, resolveOptionsFromFlags } from './resolve-command.js';

export const WATCH_USAGE = `Usage: scan-backends watch [options]

Keeps the live ggml-rpc backend list current: resolves through the chain every --interval
(as \`resolve\` does, same source options), health-checks every known backend every
--health-interval in between, and reports each change as an event. A backend goes down after
--fail-after failed checks in a row and comes back up after --recover-after good ones; a busy
server (in use by a coordinator) is alive, and one its coordinator holds is never connected to.

Durations take a unit: 500ms, 5s, 10m, 1h (a bare number is milliseconds).

Watch options:
      --interval D         re-resolve through the chain (default 30s)
      --health-interval D  health-check the known backends (default 5s)
      --fail-after N       failed checks in a row before down (default 3)
      --recover-after N    good checks in a row before up again (default 2)
      --forget-after D     a backend down this long is removed (default 10m)
      --on-change CMD      when the usable set changes, run CMD (no shell) with
                           SCAN_BACKENDS_RPC=host:port,… and the full JSON view on stdin
      --on-change-shell    run CMD through /bin/sh -c instead
      --on-change-timeout D  stop CMD (its process group) after this (default 60s)
      --settle D           wait this long after the last change before running CMD (default 5s)
      --format F           ndjson | text (default: text on a terminal, else ndjson)
      --log-file PATH      logs to PATH, rotated by size (SIGHUP reopens it); default: JSON
                           lines on stdout with the events (on a terminal: stderr, as text)
      --log-max-size N     rotate past N bytes (K, M, G suffixes; default 50M)
      --log-files N        rotated files kept (default 5)
      --log-level L        debug | info | warn | error (default info; debug adds a line a resolve)
      --heartbeat D        log a heartbeat line this often (default 1h)
      --until TIME         stop at this ISO 8601 time, as SIGTERM does
      --fleet-key-file F   the secret (16 bytes or more) the watchers on one Redis share: what
                           they write is signed with it (HMAC-SHA256), and unsigned or badly
                           signed messages, registrations and leases are ignored

Source and probe options, as resolve takes them:
      --sources LIST, --merge, --no-verify, --config FILE, --strict, --subnet T,
      -p/--ports P, --dns-sd-type T (a watcher naming dns-sd browses continuously),
      --redis URL, --redis-ttl S, --redis-prefix P, --require-redis,
      --allow-public, --allow-link-local, --accept-silent, --trust-all-users,
      --timing T, --min-rtt-timeout MS, --max-rtt-timeout MS,
      --timeout MS, --probe-timeout MS, --rpc-version V, --engine E

Signals: SIGTERM/SIGINT stop it (exit 0 within 10 s; a second one exits at once); SIGHUP
re-reads the config file, resolves at once and reopens the log file. Run it under systemd
(Type=notify; see contrib/systemd), supervisord or PM2; it never daemonizes itself.

Exit: 0 stopped, 2 usage error, 3 environment error.
`;

/** resolve's flags that choose sources and probes (not its output ones, nor the one-shot browse's wait: a watcher browses continuously). */
const SOURCE_FLAGS = Object.fromEntries(
  Object.entries(RESOLVE_FLAGS).filter(
    ([name]) => !['explain', 'format', 'from', 'token-file', 'dns-sd-wait'].includes(name),
  ),
) as Omit<typeof RESOLVE_FLAGS, 'explain' | 'format' | 'from' | 'token-file' | 'dns-sd-wait'>;

export const WATCH_FLAGS = {
  ...SOURCE_FLAGS,
  format: formatFlag(['text', 'ndjson']),
  interval: DURATION_FLAG,
  'health-interval': DURATION_FLAG,
  'fail-after': { type: 'string' },
  'recover-after': { type: 'string' },
  'forget-after': DURATION_FLAG,
  'on-change': { type: 'string' },
  'on-change-shell': { type: 'boolean', default: false },
  'on-change-timeout': DURATION_FLAG,
  settle: DURATION_FLAG,
  'log-file': FILE_FLAG,
  'log-max-size': { type: 'string' },
  'log-files': { type: 'string' },
  'log-level': { type: 'string', choices: LOG_LEVELS },
  heartbeat: DURATION_FLAG,
  until: { type: 'string' },
  'fleet-key-file': FILE_FLAG,
} as const;

/**
 * --fleet-key-file: the fleet's shared secret, its bytes as they are (a binary key stays
 * binary), at least 16; a line end or spaces at either end are not part of it.
 */
function fleetKeyOption(file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  const bytes = readSecretFile('--fleet-key-file', file);
  const blank = (b: number | undefined) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
  let [start, end] = [0, bytes.length];
  while (start < end && blank(bytes[start])) start += 1;
  while (end > start && blank(bytes[end - 1])) end -= 1;
  const key = bytes.subarray(start, end);
  if (key.length < 16)
    throw new UsageError(`--fleet-key-file: ${file} holds ${key.length} bytes; a fleet key needs 16 or more`);
  return key;
}

function parseSize(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = /^([0-9]+)\s*([kmg])?b?$/i.exec(text.trim());
  if (!match) throw new UsageError(`${flag}: expected a size such as 500K, 50M or 1G; got "${text}"`);
  const scale = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(match[2] ?? '').toLowerCase()] ?? 1;
  const value = Number(match[1]) * scale;
  checkIntegerOption('logMaxBytes', value, flag);
  return value;
}

function parseUntil(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const when = new Date(text);
  if (!/^\d{4}-\d\d-\d\d/.test(text) || Number.isNaN(when.getTime())) {
    throw new UsageError(`--until: expected an ISO 8601 time such as 2026-12-01T06:00:00Z; got "${text}"`);
  }
  if (when.getTime() <= Date.now()) throw new UsageError(`--until: ${when.toISOString()} has already passed`);
  return when;
}

/** One event as a person reads it: "12:00:01 #3 down 10.0.0.7:50052 — why". */
export function humanEvent(event: WatchEvent): string {
  const b = event.backend;
  const clock = new Date(event.time).toTimeString().slice(0, 8);
  const what =
    event.type === 'changed'
      ? (event.changes ?? [])
          .map((c) => `${c.field}${c.device === undefined ? '' : `[${c.device}]`} ${c.from ?? '-'} → ${c.to ?? '-'}`)
          .join(', ')
      : event.cause.saw;
  const detail = b.rpc ? ` ggml-rpc ${b.rpc.protocol}` : '';
  return `${terminalSafe(`${clock} #${event.id} ${event.type.padEnd(7)} ${formatHostPort(b)}${detail} (${b.sources.join(',')}): ${what}`)}\n`;
}

type WatchFlagValues = ReturnType<typeof parseFlags<{ options: typeof WATCH_FLAGS }>>['values'];

/** A watch as its flags ask for it: the watcher's options and the daemon's, no defaults filled in. */
export interface WatchRequest {
  watchOptions: WatchOptions;
  daemon: Omit<DaemonOptions, 'signal'>;
}

/** The --on-change command as argv: split (no shell), or through /bin/sh -c with --on-change-shell. */
function onChangeOption(values: WatchFlagValues): string[] | undefined {
  const line = values['on-change'];
  if (line === undefined) {
    if (values['on-change-shell']) throw new UsageError('--on-change-shell: needs --on-change CMD');
    return undefined;
  }
  let argv: string[];
  try {
    argv = values['on-change-shell'] ? ['/bin/sh', '-c', line] : splitCommand(line);
  } catch (error) {
    throw new UsageError(`--on-change: ${(error as Error).message}`);
  }
  if (argv.length === 0) throw new UsageError('--on-change: an empty command');
  return argv;
}

/** watch's flags (serve's too) as options, each checked where it enters; nothing starts. */
export function parseWatchFlags(values: WatchFlagValues): WatchRequest {
  const format = parseFormat(values.format, WATCH_FLAGS.format.choices, 'ndjson');
  const watchOptions: WatchOptions = {
    ...resolveOptionsFromFlags(values),
    intervalMs: parseDuration('--interval', values.interval, 'intervalMs'),
    healthIntervalMs: parseDuration('--health-interval', values['health-interval'], 'healthIntervalMs'),
    failAfter: parseInteger('--fail-after', values['fail-after'], 'failAfter'),
    recoverAfter: parseInteger('--recover-after', values['recover-after'], 'recoverAfter'),
    forgetAfterMs: parseDuration('--forget-after', values['forget-after'], 'forgetAfterMs'),
    fleetKey: fleetKeyOption(values['fleet-key-file']),
  };
  const settleMs = parseDuration('--settle', values.settle, 'settleMs');
  const onChangeTimeoutMs = parseDuration('--on-change-timeout', values['on-change-timeout'], 'onChangeTimeoutMs');
  const heartbeatMs = parseDuration('--heartbeat', values.heartbeat, 'heartbeatMs');
  const logMaxBytes = parseSize('--log-max-size', values['log-max-size']);
  const logFiles = parseInteger('--log-files', values['log-files'], 'logFiles');
  const until = parseUntil(values.until);
  const logLevel = values['log-level'] as LogLevel | undefined;
  if (logLevel !== undefined && !LOG_LEVELS.includes(logLevel)) {
    throw new UsageError(`--log-level: expected ${LOG_LEVELS.join(', ')}; got "${logLevel}"`);
  }
  const onChangeArgv = onChangeOption(values);
  return {
    watchOptions,
    daemon: {
      eventLine: format === 'ndjson' ? (event) => `${JSON.stringify(event)}\n` : humanEvent,
      logFile: values['log-file'],
      logMaxBytes,
      logFiles,
      logLevel,
      onChange: onChangeArgv && { argv: onChangeArgv, settleMs, timeoutMs: onChangeTimeoutMs },
      heartbeatMs,
      until,
    },
  };
}

/** What serve (or another command) adds to the daemon once the watcher has started. */
export type Attachment = (watcher: Watcher, daemon: Daemon) => Promise<void>;

/** Runs a watcher as a daemon until it is stopped; returns the exit code (0). */
export async function runWatcher(request: WatchRequest, signal: AbortSignal, attach?: Attachment): Promise<number> {
  // The watcher first: it starts nothing, and its options (and the environment's) are refused
  // before the daemon opens a log file or takes stdout.
  const watcher = new Watcher(request.watchOptions);
  let daemon: Daemon;
  try {
    daemon = startDaemon({ ...request.daemon, signal });
  } catch (error) {
    await watcher.close();
    throw new UsageError(`--log-file: ${(error as Error).message}`);
  }
  daemon.follow(watcher);
  if (attach) await attach(watcher, daemon);
  await daemon.run();
  return 0;
}

export async function runWatchCommand(argv: string[], signal: AbortSignal): Promise<number> {
  const { values } = parseFlags({ args: argv, allowPositionals: false, options: { ...WATCH_FLAGS } });
  if (values.help) {
    process.stdout.write(WATCH_USAGE);
    return 0;
  }
  return runWatcher(parseWatchFlags(values), signal);
}
