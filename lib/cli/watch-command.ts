// `scan-backends watch`: the resolver as a daemon. Events on stdout (NDJSON, or a line each
// on a terminal), pino logs, --on-change, systemd notify and watchdog, a heartbeat, and a
// shutdown that always ends: SIGTERM/SIGINT or --until stop it within 10 s, exit 0.

import { formatHostPort } from '../common/host-port.js';
import { terminalSafe } from '../common/peer-text.js';
import { createDaemonLog, DEFAULT_LOG_FILES, DEFAULT_LOG_MAX_BYTES, LOG_LEVELS, type LogLevel } from '../daemon/log.js';
import { DEFAULT_ON_CHANGE_TIMEOUT_MS, DEFAULT_SETTLE_MS, OnChangeRunner, splitCommand } from '../daemon/on-change.js';
import { StdoutWriter } from '../daemon/stdout-writer.js';
import { SystemdNotifier, watchdogIntervalMs } from '../daemon/systemd.js';
import { checkIntegerOption } from '../common/options.js';
import { PACKAGE_VERSION, Watcher, WATCH_DEFAULTS } from '../watch/watcher.js';
import type { WatchEvent, WatchSnapshot } from '../watch/types.js';
import { isLoopbackAddress } from '../common/addresses.js';
import { parseHostPort } from '../common/host-port.js';
import { normalizeHost } from '../serve/allowed-hosts.js';
import { DEFAULT_HTTP_PORTS, HttpDiscovery } from '../serve/http-discovery.js';
import { DEFAULT_LISTEN, startServer, type ServeHandle } from '../serve/server.js';
import { DEFAULT_PROBE_TIMEOUT_MS, DEFAULT_TIMEOUT_MS } from '../common/options.js';
import { parsePorts } from '../scan/targets/grammar.js';
import { EnvironmentError, UsageError } from './exit-codes.js';
import { parseDuration, parseFlags, parseFormat, parseInteger, readSecretFile, tokenOption } from './flags.js';
import { RESOLVE_FLAGS, resolveOptionsFromFlags } from './resolve-command.js';
import { shutdownPolicy } from './shutdown.js';

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
      --sources LIST, --merge, --config FILE, --subnet T, -p/--ports P, --redis URL,
      --redis-ttl S, --redis-prefix P, --allow-public, --allow-link-local, --accept-silent,
      --trust-all-users,
      --timeout MS, --probe-timeout MS, --rpc-version V, --engine E

Signals: SIGTERM/SIGINT stop it (exit 0 within 10 s; a second one exits at once); SIGHUP
re-reads the config file, resolves at once and reopens the log file. Run it under systemd
(Type=notify; see contrib/systemd), supervisord or PM2; it never daemonizes itself.

Exit: 0 stopped, 2 usage error, 3 environment error.
`;

/** resolve's flags that choose sources and probes (not its output ones). */
const SOURCE_FLAGS = Object.fromEntries(
  Object.entries(RESOLVE_FLAGS).filter(([name]) => !['explain', 'format', 'from', 'token-file'].includes(name)),
) as Omit<typeof RESOLVE_FLAGS, 'explain' | 'format' | 'from' | 'token-file'>;

export const WATCH_FLAGS = {
  ...SOURCE_FLAGS,
  format: { type: 'string' },
  interval: { type: 'string' },
  'health-interval': { type: 'string' },
  'fail-after': { type: 'string' },
  'recover-after': { type: 'string' },
  'forget-after': { type: 'string' },
  'on-change': { type: 'string' },
  'on-change-shell': { type: 'boolean', default: false },
  'on-change-timeout': { type: 'string' },
  settle: { type: 'string' },
  'log-file': { type: 'string' },
  'log-max-size': { type: 'string' },
  'log-files': { type: 'string' },
  'log-level': { type: 'string' },
  heartbeat: { type: 'string' },
  until: { type: 'string' },
  'fleet-key-file': { type: 'string' },
} as const;

export const SERVE_USAGE = `Usage: scan-backends serve [--listen HOST:PORT] [--token-file FILE] [--allow-host NAME] [watch options]

Runs a watcher (every watch option applies, see watch --help) and shows it over HTTP:
  GET /                   the dashboard: backends, device memory, provenance, events, scanners
                          (live over SSE, polling every 3 s without it, whole without JavaScript)
  GET /api/backends       schema 1: every backend with its status, sources and last event
  GET /api/events         Server-Sent Events of the watcher's events (Last-Event-ID resumes)
  GET /api/scanners       the watchers sharing the Redis registry
  GET /api/prometheus-sd  Prometheus HTTP service discovery: llama-server and vLLM endpoints
                          found on --http-ports that expose /metrics
  GET /metrics            Prometheus metrics; GET /healthz, /readyz

Serve options:
      --listen HOST:PORT     where to listen (default 127.0.0.1:8765; port 0: any free one)
      --token-file FILE      the token every request must carry (Authorization: Bearer, or the
                             cookie the page gets from /?token=…); $SCAN_BACKENDS_TOKEN too.
                             Required to listen anywhere but loopback.
      --allow-host NAME      a name the server is reached by (repeatable); a request naming
                             another Host than this, loopback's or --listen's gets 421
      --max-sse-clients N    event-stream clients at once (default 100)
      --http-ports P         ports where HTTP backends are looked for (default 8080,8000), on
                             the --subnet list, else on the hosts of the backends followed

Exit: 0 stopped, 2 usage error, 3 environment error (the address is in use).
`;

export const SERVE_FLAGS = {
  ...WATCH_FLAGS,
  listen: { type: 'string' },
  'token-file': { type: 'string' },
  'allow-host': { type: 'string', multiple: true },
  'max-sse-clients': { type: 'string' },
  'http-ports': { type: 'string' },
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

/** The serve command's own settings, checked before anything starts. */
function parseServeFlags(values: Record<string, unknown>): {
  host: string;
  port: number;
  token?: string;
  allowHosts: string[];
  maxSseClients?: number;
  httpPorts: number[];
} {
  const listen = parseHostPort(String(values.listen ?? DEFAULT_LISTEN));
  if (typeof listen === 'string' || values.listen === '') {
    throw new UsageError(`--listen: expected HOST:PORT such as 127.0.0.1:8765, got "${String(values.listen)}"`);
  }
  const token = tokenOption(values['token-file'] as string | undefined);
  if (!isLoopbackAddress(listen.host) && token === undefined) {
    throw new UsageError(
      `--listen ${listen.host}: not a loopback address, so a token is required (--token-file FILE or $SCAN_BACKENDS_TOKEN)`,
    );
  }
  const allowHosts = (values['allow-host'] as string[] | undefined) ?? [];
  for (const name of allowHosts) {
    if (normalizeHost(name) === undefined) {
      throw new UsageError(`--allow-host: expected a host name or address without a port, got "${name}"`);
    }
  }
  const max = values['max-sse-clients'];
  const maxSseClients = max === undefined ? undefined : Number(max);
  if (
    maxSseClients !== undefined &&
    !(Number.isInteger(maxSseClients) && maxSseClients >= 1 && maxSseClients <= 10_000)
  ) {
    throw new UsageError(`--max-sse-clients: must be an integer 1..10000, got "${String(max)}"`);
  }
  let httpPorts = DEFAULT_HTTP_PORTS;
  if (values['http-ports'] !== undefined) {
    try {
      httpPorts = parsePorts(String(values['http-ports']));
    } catch (error) {
      throw new UsageError(`--http-ports: ${(error as Error).message}`);
    }
  }
  return { host: listen.host, port: listen.port, token, allowHosts, maxSseClients, httpPorts };
}

/** The whole stop, from the signal to the exit: what systemd's TimeoutStopSec can count on. */
export const SHUTDOWN_BOUND_MS = 10_000;
/** The part of it a stalled stdout reader may take before its lines are given up. */
const STDOUT_FLUSH_MS = 1000;
const DEFAULT_HEARTBEAT_MS = 3_600_000;

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

function statusLine(snapshot: WatchSnapshot): string {
  const up = snapshot.backends.filter((b) => b.state === 'up').length;
  const down = snapshot.backends.length - up;
  return `${up} up, ${down} down; usable: ${snapshot.rpc || 'none'}`;
}

export async function runWatchCommand(
  argv: string[],
  signal: AbortSignal,
  command: 'watch' | 'serve' = 'watch',
): Promise<number> {
  const { values } = parseFlags({
    args: argv,
    allowPositionals: false,
    options: command === 'serve' ? { ...SERVE_FLAGS } : { ...WATCH_FLAGS },
  });
  if (values.help) {
    process.stdout.write(command === 'serve' ? SERVE_USAGE : WATCH_USAGE);
    return 0;
  }
  const serve = command === 'serve' ? parseServeFlags(values) : undefined;
  const format = parseFormat(values.format, ['ndjson', 'text'], process.stdout.isTTY ? 'text' : 'ndjson');
  const resolveOptions = resolveOptionsFromFlags(values);
  const watchOptions = {
    ...resolveOptions,
    intervalMs: parseDuration('--interval', values.interval, 'intervalMs'),
    healthIntervalMs: parseDuration('--health-interval', values['health-interval'], 'healthIntervalMs'),
    failAfter: parseInteger('--fail-after', values['fail-after'], 'failAfter'),
    recoverAfter: parseInteger('--recover-after', values['recover-after'], 'recoverAfter'),
    forgetAfterMs: parseDuration('--forget-after', values['forget-after'], 'forgetAfterMs'),
    fleetKey: fleetKeyOption(values['fleet-key-file']),
  };
  const settleMs = parseDuration('--settle', values.settle, 'settleMs') ?? DEFAULT_SETTLE_MS;
  const onChangeTimeoutMs =
    parseDuration('--on-change-timeout', values['on-change-timeout'], 'onChangeTimeoutMs') ??
    DEFAULT_ON_CHANGE_TIMEOUT_MS;
  const heartbeatMs = parseDuration('--heartbeat', values.heartbeat, 'heartbeatMs') ?? DEFAULT_HEARTBEAT_MS;
  const logMaxBytes = parseSize('--log-max-size', values['log-max-size']) ?? DEFAULT_LOG_MAX_BYTES;
  const logFiles = parseInteger('--log-files', values['log-files'], 'logFiles') ?? DEFAULT_LOG_FILES;
  const until = parseUntil(values.until);
  const logLevel = (values['log-level'] ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new UsageError(`--log-level: expected ${LOG_LEVELS.join(', ')}; got "${logLevel}"`);
  }
  let onChangeArgv: string[] | undefined;
  if (values['on-change'] !== undefined) {
    const line = values['on-change'];
    try {
      onChangeArgv = values['on-change-shell'] ? ['/bin/sh', '-c', line] : splitCommand(line);
    } catch (error) {
      throw new UsageError(`--on-change: ${(error as Error).message}`);
    }
    if (onChangeArgv.length === 0) throw new UsageError('--on-change: an empty command');
  } else if (values['on-change-shell']) throw new UsageError('--on-change-shell: needs --on-change CMD');

  // One stdout for event lines and log lines, so they stay in order; it never waits for a
  // reader that stopped reading (lines are dropped and counted instead).
  const stdout = new StdoutWriter();
  // A reader that went away (`watch | head -1`, a dead log collector) stops the daemon as a
  // signal does: a clean shutdown, with nothing more written to stdout.
  const stdoutClosed = new Promise<NodeJS.ErrnoException>((resolve) => stdout.once('gone', resolve));
  let log;
  try {
    log = createDaemonLog({
      file: values['log-file'],
      maxBytes: logMaxBytes,
      files: logFiles,
      human: values['log-file'] === undefined && process.stdout.isTTY === true,
      stdout,
      level: logLevel,
    });
  } catch (error) {
    throw new UsageError(`--log-file: ${(error as Error).message}`);
  }
  const { logger } = log;
  stdout.on('drained', (told) => logger.warn(told, 'stdout: its reader stalled; lines were dropped'));
  shutdownPolicy.graceMs = SHUTDOWN_BOUND_MS;

  const watcher = new Watcher(watchOptions);
  watcher.on('log', ({ level, msg, ...fields }) => logger[level](fields, msg));
  watcher.on('event', (event) => {
    stdout.write(format === 'ndjson' ? `${JSON.stringify(event)}\n` : humanEvent(event));
  });

  const runner = onChangeArgv
    ? new OnChangeRunner({
        argv: onChangeArgv,
        settleMs,
        timeoutMs: onChangeTimeoutMs,
        log: (level, msg, fields) => logger[level](fields, msg),
      })
    : undefined;
  const notifier = SystemdNotifier.fromEnvironment((message) => logger.error(message));
  const status = () => notifier?.notify(`STATUS=${statusLine(watcher.snapshot())}`);
  watcher.on('usable', () => {
    status();
    if (runner) {
      const snapshot = watcher.snapshot();
      runner.update(snapshot.rpc, `${JSON.stringify(snapshot)}\n`);
    }
  });

  logger.info(
    {
      watcher: watcher.id,
      version: PACKAGE_VERSION,
      intervalMs: watchOptions.intervalMs ?? WATCH_DEFAULTS.intervalMs,
      healthIntervalMs: watchOptions.healthIntervalMs ?? WATCH_DEFAULTS.healthIntervalMs,
      failAfter: watchOptions.failAfter ?? WATCH_DEFAULTS.failAfter,
      recoverAfter: watchOptions.recoverAfter ?? WATCH_DEFAULTS.recoverAfter,
      ...(onChangeArgv ? { onChange: onChangeArgv.join(' ') } : {}),
      ...(notifier ? { notifySocket: notifier.socket } : {}),
    },
    'watch started',
  );
  watcher.start();
  let http: ServeHandle | undefined;
  if (serve) {
    const discovery = new HttpDiscovery(watcher, {
      subnet: watchOptions.subnet,
      ports: serve.httpPorts,
      intervalMs: watchOptions.intervalMs ?? WATCH_DEFAULTS.intervalMs,
      timeoutMs: watchOptions.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      probeTimeoutMs: watchOptions.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
      allowPublic: watchOptions.allowPublic,
      log: (level, msg, fields) => logger[level](fields, msg),
    });
    try {
      http = await startServer(watcher, { ...serve, discovery });
    } catch (error) {
      discovery.close();
      await watcher.close();
      log.close();
      const code = (error as NodeJS.ErrnoException).code;
      throw new EnvironmentError(`cannot listen on ${formatHostPort(serve)}: ${code ?? (error as Error).message}`);
    }
    logger.info({ url: http.url }, 'serving');
  }

  const timers: NodeJS.Timeout[] = [];
  const started = performance.now();
  timers.push(
    setInterval(() => {
      const s = watcher.snapshot();
      logger.info(
        {
          uptimeS: Math.round((performance.now() - started) / 1000),
          cycles: s.watcher.cycles,
          healthRounds: s.watcher.healthRounds,
          up: s.backends.filter((b) => b.state === 'up').length,
          down: s.backends.filter((b) => b.state === 'down').length,
          usable: s.rpc,
          lastError: s.watcher.lastError ?? null,
        },
        'heartbeat',
      );
    }, heartbeatMs),
  );
  const watchdogMs = notifier ? watchdogIntervalMs() : undefined;
  if (notifier && watchdogMs !== undefined) {
    // WATCHDOG=1 only while the loop really turns: a step stuck for longer than the watchdog
    // period stops the pings and systemd restarts the service.
    timers.push(
      setInterval(() => {
        if (watcher.busyForMs() < watchdogMs * 2) notifier.notify('WATCHDOG=1');
        else logger.error({ busyForMs: Math.round(watcher.busyForMs()) }, 'watchdog: a step is stuck; not pinging');
      }, watchdogMs),
    );
  }
  void watcher.ready.then(() => {
    if (signal.aborted) return;
    const s = watcher.snapshot();
    logger.info({ backends: s.backends.length, usable: s.rpc }, 'first resolve done');
    notifier?.notify('READY=1', `STATUS=${statusLine(s)}`);
  });

  const onHangup = () => {
    log.reopen();
    logger.info('SIGHUP: reopened the log, re-reading the config and resolving now');
    watcher.reload();
  };
  process.on('SIGHUP', onHangup);

  // Stop on the CLI's signal or at --until; `until` may lie beyond setTimeout's 24.8 days.
  const stopReason = await new Promise<string>((resolve) => {
    signal.addEventListener('abort', () => resolve((signal.reason as Error)?.message ?? 'signal'), { once: true });
    void stdoutClosed.then((error) => resolve(error.code === 'EPIPE' ? 'stdout closed' : `stdout: ${error.message}`));
    if (signal.aborted) resolve('signal');
    if (until) {
      const check = () => {
        const left = until.getTime() - Date.now();
        if (left <= 0) resolve(`--until ${until.toISOString()} reached`);
        else timers.push(setTimeout(check, Math.min(left, 3_600_000)));
      };
      check();
    }
  });

  const stopping = performance.now();
  logger.info({ reason: stopReason }, 'stopping');
  notifier?.notify('STOPPING=1');
  for (const t of timers) clearTimeout(t);
  process.off('SIGHUP', onHangup);
  await http?.close();
  await Promise.all([watcher.close(), runner?.close(SHUTDOWN_BOUND_MS / 2)]);
  const s = watcher.snapshot();
  logger.info(
    {
      elapsedMs: Math.round(performance.now() - stopping),
      cycles: s.watcher.cycles,
      lastEventId: s.lastEventId,
      onChangeRuns: runner?.runs ?? 0,
    },
    'stopped',
  );
  log.close();
  const unwritten = await stdout.close(STDOUT_FLUSH_MS);
  if (unwritten > 0)
    process.stderr.write(`scan-backends: ${unwritten} lines never reached stdout (its reader stalled)\n`);
  return 0;
}
