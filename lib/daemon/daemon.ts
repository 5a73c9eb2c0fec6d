// The long-lived process around a watcher, as `watch` and `serve` run it (and `run` will):
// one stdout for event and log lines, the pino logger, --on-change, systemd notify and
// watchdog, a heartbeat, SIGHUP, and a stop that always ends within SHUTDOWN_BOUND_MS.
//
//   const daemon = startDaemon({ signal, eventLine });  // throws only if the log file won't open
//   daemon.follow(watcher);                              // says 'watch started', starts it
//   daemon.beforeStop(() => server.close());             // closed before the watcher, in order
//   await daemon.run();                                  // until a signal, --until, stdout gone
import type { Logger } from 'pino';

import type { WatchEvent, WatchSnapshot } from '../watch/types.js';
import { PACKAGE_VERSION, type Watcher } from '../watch/watcher.js';
import { normalizeDaemonOptions, type DaemonSettings, type DaemonTuning } from '../common/options.js';
import { createDaemonLog, type DaemonLog } from './log.js';
import { OnChangeRunner } from './on-change.js';
import { shutdownPolicy } from './shutdown.js';
import { StdoutWriter } from './stdout-writer.js';
import { startWatchdog, SystemdNotifier } from './systemd.js';

/** The whole stop, from the signal to the exit: what systemd's TimeoutStopSec can count on. */
export const SHUTDOWN_BOUND_MS = 10_000;
/** The part of it a stalled stdout reader may take before its lines are given up. */
const STDOUT_FLUSH_MS = 1000;

export interface DaemonOptions extends DaemonTuning {
  /** Stops the daemon when it aborts (the CLI's SIGTERM/SIGINT); its reason's message is logged. */
  signal: AbortSignal;
  /** One watcher event as its stdout line (NDJSON, or a line a person reads). */
  eventLine: (event: WatchEvent) => string;
}

/** Opens stdout and the log and takes the daemon's shutdown bound; throws if the log file cannot be opened. */
export function startDaemon(options: DaemonOptions): Daemon {
  return new Daemon(options);
}

function statusLine(snapshot: WatchSnapshot): string {
  const up = snapshot.backends.filter((b) => b.state === 'up').length;
  const down = snapshot.backends.length - up;
  return `${up} up, ${down} down; usable: ${snapshot.rpc || 'none'}`;
}

export class Daemon {
  readonly logger: Logger;
  readonly #options: DaemonOptions & DaemonSettings;
  readonly #stdout: StdoutWriter;
  readonly #log: DaemonLog;
  readonly #stopReason: Promise<string>;
  readonly #stdoutGone: Promise<NodeJS.ErrnoException>;
  #stop: (reason: string) => void = () => {};
  #watcher?: Watcher;
  #runner?: OnChangeRunner;
  #notifier?: SystemdNotifier;
  readonly #beforeStop: (() => Promise<void> | void)[] = [];
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(options: DaemonOptions) {
    this.#options = normalizeDaemonOptions(options);
    // One stdout for event lines and log lines, so they stay in order; it never waits for a
    // reader that stopped reading (lines are dropped and counted instead).
    this.#stdout = new StdoutWriter();
    this.#stopReason = new Promise<string>((resolve) => (this.#stop = resolve));
    // A reader that went away (`watch | head -1`, a dead log collector) stops the daemon as a
    // signal does: a clean shutdown, with nothing more written to stdout.
    this.#stdoutGone = new Promise((resolve) => this.#stdout.once('gone', resolve));
    this.#log = createDaemonLog({
      file: options.logFile,
      maxBytes: this.#options.logMaxBytes,
      files: this.#options.logFiles,
      human: options.logFile === undefined && process.stdout.isTTY === true,
      stdout: this.#stdout,
      level: this.#options.logLevel,
    });
    this.logger = this.#log.logger;
    this.#stdout.on('drained', (told) => this.logger.warn(told, 'stdout: its reader stalled; lines were dropped'));
    shutdownPolicy.graceMs = SHUTDOWN_BOUND_MS;
  }

  /** Writes one watcher event to stdout. */
  readonly onEvent = (event: WatchEvent): void => {
    this.#stdout.write(this.#options.eventLine(event));
  };

  /** Writes one line of another kind (run's coordinator events) to the same stdout, in order. */
  writeLine(line: string): void {
    this.#stdout.write(line);
  }

  /** Follows `watcher`: its logs, events and usable set (--on-change, systemd STATUS); then starts it. */
  follow(watcher: Watcher): void {
    const { settings } = watcher;
    this.#watcher = watcher;
    const logger = this.logger;
    watcher.on('log', ({ level, msg, ...fields }) => logger[level](fields, msg));
    watcher.on('event', this.onEvent);
    const onChange = this.#options.onChange;
    const runner = onChange
      ? new OnChangeRunner({
          argv: onChange.argv,
          settleMs: onChange.settleMs,
          timeoutMs: onChange.timeoutMs,
          log: (level, msg, fields) => logger[level](fields, msg),
        })
      : undefined;
    const notifier = SystemdNotifier.fromEnvironment((message) => logger.error(message));
    [this.#runner, this.#notifier] = [runner, notifier];
    watcher.on('usable', () => {
      if (!notifier && !runner) return;
      const snapshot = watcher.snapshot();
      notifier?.notify(`STATUS=${statusLine(snapshot)}`);
      runner?.update(snapshot.rpc, `${JSON.stringify(snapshot)}\n`);
    });
    logger.info(
      {
        watcher: watcher.id,
        version: PACKAGE_VERSION,
        intervalMs: settings.intervalMs,
        healthIntervalMs: settings.healthIntervalMs,
        failAfter: settings.failAfter,
        recoverAfter: settings.recoverAfter,
        ...(onChange ? { onChange: onChange.argv.join(' ') } : {}),
        ...(notifier ? { notifySocket: notifier.socket } : {}),
      },
      'watch started',
    );
    watcher.start();
  }

  /** Closed at the stop, in the order given, before the watcher (an HTTP server, a child). */
  beforeStop(close: () => Promise<void> | void): void {
    this.#beforeStop.push(close);
  }

  /** Stops the daemon, as a signal would; `run()` then winds it down. */
  stop(reason: string): void {
    this.#stop(reason);
  }

  /** Runs until the signal, --until, a lost stdout or stop(); then winds everything down. */
  async run(): Promise<void> {
    const watcher = this.#followed();
    const { signal, until } = this.#options;
    this.#armTimers(watcher);
    const onHangup = () => {
      this.#log.reopen();
      this.logger.info('SIGHUP: reopened the log, re-reading the config and resolving now');
      watcher.reload();
    };
    process.on('SIGHUP', onHangup);
    signal.addEventListener('abort', () => this.#stop((signal.reason as Error)?.message ?? 'signal'), { once: true });
    void this.#stdoutGone.then((error) =>
      this.#stop(error.code === 'EPIPE' ? 'stdout closed' : `stdout: ${error.message}`),
    );
    if (signal.aborted) this.#stop('signal');
    // `until` may lie beyond setTimeout's 24.8 days.
    if (until) {
      const check = () => {
        const left = until.getTime() - Date.now();
        if (left <= 0) this.#stop(`--until ${until.toISOString()} reached`);
        else this.#timers.push(setTimeout(check, Math.min(left, 3_600_000)));
      };
      check();
    }
    const reason = await this.#stopReason;
    process.off('SIGHUP', onHangup);
    await this.#windDown(watcher, reason);
  }

  /** Gives up before run(): the watcher and the log close, nothing more is said. */
  async abandon(): Promise<void> {
    await this.#watcher?.close();
    this.#log.close();
  }

  #followed(): Watcher {
    if (!this.#watcher) throw new Error('Daemon.run(): follow a watcher first');
    return this.#watcher;
  }

  /** The heartbeat line, systemd's watchdog pings, and READY=1 after the first resolve. */
  #armTimers(watcher: Watcher): void {
    const { logger } = this;
    const notifier = this.#notifier;
    const started = performance.now();
    this.#timers.push(
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
      }, this.#options.heartbeatMs),
    );
    const watchdog = startWatchdog(
      notifier,
      () => watcher.busyForMs(),
      (busyForMs) => logger.error({ busyForMs: Math.round(busyForMs) }, 'watchdog: a step is stuck; not pinging'),
    );
    if (watchdog) this.#timers.push(watchdog);
    void watcher.ready.then(() => {
      if (this.#options.signal.aborted) return;
      const s = watcher.snapshot();
      logger.info({ backends: s.backends.length, usable: s.rpc }, 'first resolve done');
      notifier?.notify('READY=1', `STATUS=${statusLine(s)}`);
    });
  }

  async #windDown(watcher: Watcher, reason: string): Promise<void> {
    const stopping = performance.now();
    this.logger.info({ reason }, 'stopping');
    this.#notifier?.notify('STOPPING=1');
    for (const t of this.#timers) clearTimeout(t);
    for (const close of this.#beforeStop) await close();
    await Promise.all([watcher.close(), this.#runner?.close(SHUTDOWN_BOUND_MS / 2)]);
    const s = watcher.snapshot();
    this.logger.info(
      {
        elapsedMs: Math.round(performance.now() - stopping),
        cycles: s.watcher.cycles,
        lastEventId: s.lastEventId,
        onChangeRuns: this.#runner?.runs ?? 0,
      },
      'stopped',
    );
    this.#log.close();
    const unwritten = await this.#stdout.close(STDOUT_FLUSH_MS);
    if (unwritten > 0)
      process.stderr.write(`scan-backends: ${unwritten} lines never reached stdout (its reader stalled)\n`);
  }
}
