// `scan-backends announce`: a small daemon beside one rpc-server. It checks the server as a
// resolve does (checkBackend: held by a local coordinator → not connected to; else HELLO and
// close), advertises it over DNS-SD while it answers, says goodbye when it stops answering
// and announces again when it is back. SIGTERM: goodbye, then exit.
import { hostname, networkInterfaces } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

import { isLoopbackAddress, parseAddress } from '../common/addresses.js';
import { parseHostPort } from '../common/host-port.js';
import { LOG_LEVELS, type LogLevel } from '../common/options.js';
import { shutdownPolicy } from '../daemon/shutdown.js';
import { createDaemonLog } from '../daemon/log.js';
import { StdoutWriter } from '../daemon/stdout-writer.js';
import { startWatchdog, SystemdNotifier } from '../daemon/systemd.js';
import { Announcer, instanceLabel, srvTargetHost, type Announcement } from '../dns-sd/announcer.js';
import { serviceType } from '../dns-sd/records.js';
import { checkBackend, CLOSED_REASON } from '../resolver/index.js';
import type { Backend } from '../resolver/types.js';
import { EnvironmentError, UsageError } from './exit-codes.js';
import { parseDuration, parseFlags, parseInteger } from './flags.js';

export const ANNOUNCE_USAGE = `Usage: scan-backends announce [options]

Advertises the rpc-server beside it over DNS-SD (multicast DNS), so that \`resolve --sources
…,dns-sd\` and a watcher browsing dns-sd find it without a scan. It checks the server every
--interval (HELLO, then closes; never while a local coordinator holds it), announces it with
TXT records (txtvers, protovers, devices, memory) while it answers, says goodbye when it stops
answering (a refused connection, or two failed checks in a row), and announces it again when
it is back.

Options:
      --rpc HOST:PORT    the rpc-server, at the address neighbours reach it (default
                         127.0.0.1:50052); a loopback address is only accepted by browsers
                         on this host, 0.0.0.0 announces every IPv4 address of this host
                         ([::]: IPv6 too)
      --name NAME        the instance name (default this host's name); the SRV record
                         names the host NAME-rpc.local, never this host's own .local name
      --type T           the service type (default _ggml-rpc._tcp; _llama-rpc._tcp is the other)
      --interval D       how often the server is checked (default 5s; a busy one every 30s)
      --timeout MS       connect timeout (default 1000)
      --probe-timeout MS HELLO deadline (default 2000)
      --log-file PATH    logs to PATH (default: JSON lines on stdout; on a terminal, text on stderr)
      --log-level L      debug | info | warn | error (default info)

Signals: SIGTERM/SIGINT send the goodbye and exit 0. Under systemd: Type=notify (READY=1
after the first check, STATUS=, WATCHDOG=1); see contrib/systemd.

Exit: 0 stopped, 2 usage error, 3 environment error (port 5353 cannot be used).
`;

export const ANNOUNCE_FLAGS = {
  rpc: { type: 'string' },
  name: { type: 'string' },
  type: { type: 'string' },
  interval: { type: 'string' },
  timeout: { type: 'string' },
  'probe-timeout': { type: 'string' },
  'log-file': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const DEFAULT_INTERVAL_MS = 5000;
/**
 * Failed checks in a row before the goodbye, so one lost check does not make every watcher
 * drop and re-add the server; a refused connection (the server is gone) withdraws at once.
 */
const FAIL_AFTER = 2;
/** A busy server (another client holds it) is connected to at most this often. */
const BUSY_INTERVAL_MS = 30_000;

interface AnnounceRequest {
  host: string;
  port: number;
  name: string;
  type: string;
  intervalMs: number;
  timeoutMs?: number;
  probeTimeoutMs?: number;
  logFile?: string;
  logLevel: LogLevel;
}

/**
 * The addresses to announce for the rpc-server's host: itself, or for a wildcard every address
 * of this host it listens on (0.0.0.0: IPv4; ::, as rpc-server -H :: binds: IPv6 too), never a
 * loopback or link-local one (browsers elsewhere refuse those).
 */
function announcedAddresses(host: string): string[] {
  if (host !== '0.0.0.0' && host !== '::') return [host];
  return Object.values(networkInterfaces())
    .flatMap((infos) => infos ?? [])
    .filter((i) => !i.internal && (i.family === 'IPv4' || (host === '::' && !i.address.startsWith('fe80:'))))
    .map((i) => i.address);
}

/** TXT pairs from what HELLO and the device queries said. */
export function txtFor(backend: Backend): Record<string, string> {
  const txt: Record<string, string> = { txtvers: '1' };
  if (backend.rpc) {
    txt.protovers = backend.rpc.protocol;
    txt.devices = String(backend.rpc.devices.length);
    const total = backend.rpc.devices.reduce((sum, d) => sum + d.totalBytes, 0);
    if (total > 0) txt.memory = String(total);
  }
  return txt;
}

export function parseAnnounceArgs(argv: string[]): AnnounceRequest | 'help' {
  const { values } = parseFlags({ args: argv, allowPositionals: false, options: { ...ANNOUNCE_FLAGS } });
  if (values.help) return 'help';
  const target = parseHostPort(values.rpc ?? '127.0.0.1:50052');
  if (typeof target === 'string' || !parseAddress(target.host)) {
    throw new UsageError(`--rpc: expected an address and port such as 192.168.1.20:50052, got "${values.rpc}"`);
  }
  const type = serviceType(values.type ?? '_ggml-rpc._tcp');
  if (type === undefined)
    throw new UsageError(`--type: expected a service type such as _ggml-rpc._tcp, got "${values.type}"`);
  const name = instanceLabel(values.name ?? hostname());
  if (name === '') throw new UsageError('--name: an empty name');
  const logLevel = (values['log-level'] ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel))
    throw new UsageError(`--log-level: expected ${LOG_LEVELS.join(', ')}; got "${logLevel}"`);
  return {
    host: target.host,
    port: target.port,
    name,
    type,
    intervalMs: parseDuration('--interval', values.interval, 'intervalMs') ?? DEFAULT_INTERVAL_MS,
    timeoutMs: parseInteger('--timeout', values.timeout, 'timeoutMs'),
    probeTimeoutMs: parseInteger('--probe-timeout', values['probe-timeout'], 'probeTimeoutMs'),
    logFile: values['log-file'],
    logLevel,
  };
}

export async function runAnnounceCommand(argv: string[], signal: AbortSignal): Promise<number> {
  const request = parseAnnounceArgs(argv);
  if (request === 'help') {
    process.stdout.write(ANNOUNCE_USAGE);
    return 0;
  }
  const addresses = announcedAddresses(request.host);
  if (addresses.length === 0) {
    throw new EnvironmentError(`--rpc ${request.host}: this host has no address to announce for it`);
  }
  // A wildcard server is checked where this host reaches it (a coordinator elsewhere holding
  // it makes it silent, so busy: still announced).
  const checkHost = request.host === '0.0.0.0' ? '127.0.0.1' : request.host === '::' ? '::1' : request.host;
  const stdout = new StdoutWriter();
  let log;
  try {
    log = createDaemonLog({
      file: request.logFile,
      maxBytes: 50 * 1024 * 1024,
      files: 5,
      human: request.logFile === undefined && process.stdout.isTTY === true,
      stdout,
      level: request.logLevel,
    });
  } catch (error) {
    throw new UsageError(`--log-file: ${(error as Error).message}`);
  }
  const logger = log.logger;
  shutdownPolicy.graceMs = 5000;
  let announcer: Announcer;
  try {
    announcer = await Announcer.open();
  } catch (error) {
    log.close();
    throw new EnvironmentError((error as Error).message);
  }
  const notifier = SystemdNotifier.fromEnvironment((message) => logger.error(message));
  /** performance.now() when the current check started; undefined while the loop sleeps. */
  let busySince: number | undefined;
  const watchdog = startWatchdog(
    notifier,
    () => (busySince === undefined ? 0 : performance.now() - busySince),
    (busyForMs) => logger.error({ busyForMs: Math.round(busyForMs) }, 'watchdog: a check is stuck; not pinging'),
  );
  const where = `${request.host}:${request.port}`;
  const base = {
    instance: request.name,
    type: request.type,
    host: srvTargetHost(request.name),
    port: request.port,
    addresses,
  };
  logger.info(
    { rpc: where, instance: request.name, type: request.type, addresses: base.addresses },
    'announce started',
  );
  if (isLoopbackAddress(request.host))
    logger.warn({ rpc: where }, 'a loopback address: only browsers on this host accept it');
  let first = true;
  let failures = 0;
  try {
    while (!signal.aborted) {
      busySince = performance.now();
      const check = await checkBackend(checkHost, request.port, {
        timeoutMs: request.timeoutMs,
        probeTimeoutMs: request.probeTimeoutMs,
        // A silent port is a server busy with another client: still there, not announced anew.
        acceptSilent: true,
        signal,
      }).catch((error: Error) => ({ reason: error.message }));
      if (signal.aborted) break;
      let busy = false;
      failures = 'backend' in check ? 0 : failures + 1;
      if ('backend' in check) {
        busy = check.backend.evidence !== 'hello';
        const next: Announcement = { ...base, txt: txtFor(check.backend) };
        const current = announcer.current;
        // Busy: keep what was announced (its TXT came from a real answer); announce only if nothing is.
        if (!current || (!busy && JSON.stringify(current.txt) !== JSON.stringify(next.txt))) {
          announcer.announce(next);
          logger.info({ rpc: where, txt: next.txt, busy }, current ? 'announcement updated' : 'announced');
        }
      } else if (announcer.current && (failures >= FAIL_AFTER || check.reason === CLOSED_REASON)) {
        await announcer.withdraw();
        logger.warn({ rpc: where, reason: check.reason }, 'withdrawn: the server does not answer');
      } else logger.debug({ rpc: where, reason: check.reason, failures }, 'a check failed');
      const status = announcer.current ? `announcing ${where} as ${request.name}` : `${where} not answering`;
      if (first) notifier?.notify('READY=1', `STATUS=${status}`);
      else notifier?.notify(`STATUS=${status}`);
      first = false;
      busySince = undefined;
      // An abort ends the wait early; the loop's condition then ends the loop.
      await sleep(busy ? Math.max(request.intervalMs, BUSY_INTERVAL_MS) : request.intervalMs, undefined, {
        signal,
      }).catch(() => {});
    }
  } finally {
    notifier?.notify('STOPPING=1');
    clearInterval(watchdog);
    const announced = announcer.current !== undefined;
    await announcer.withdraw();
    await announcer.close();
    logger.info({ rpc: where, goodbye: announced }, 'announce stopped');
    log.close();
    await stdout.close(1000);
  }
  return 0;
}
