// The daemon's log: pino JSON lines. On stdout by default, for journald, through the daemon's
// StdoutWriter (it never waits for a reader); to a file rotated by size with --log-file,
// written synchronously (a line logged before exit is a line on disk; SIGHUP reopens it, for
// logrotate); as short human lines on a terminal.
import { closeSync, existsSync, fstatSync, openSync, renameSync, writeSync } from 'node:fs';

import { pino, type DestinationStream, type Logger } from 'pino';

import type { LogLevel } from '../common/options.js';
import { terminalSafe } from '../common/peer-text.js';

/** Reopens tried after a failed write before only SIGHUP tries again: 1 s, 2 s … 128 s apart. */
const REOPEN_ATTEMPTS = 8;
const FIRST_REOPEN_DELAY_MS = 1000;

interface Failure {
  lostLines: number;
  reopenAttempts: number;
  nextReopenAt: number;
}

/**
 * A log file that rotates by size: past `maxBytes` the file becomes FILE.1 (FILE.1 becomes
 * FILE.2 …, the oldest beyond `files` is dropped) and a new FILE is started. A write, rotation
 * or reopen that fails (disk full, the directory removed) never throws into the caller: it is
 * said once on stderr, lines are counted as lost, and the path is opened again at each SIGHUP
 * and, a bounded number of times, on the lines that follow.
 */
export class RotatingFile implements DestinationStream {
  readonly #path: string;
  readonly #maxBytes: number;
  readonly #files: number;
  #fd = -1;
  #size = 0;
  #closed = false;
  /** Set from the first failure until a line is written again. */
  #failure: Failure | undefined;

  constructor(path: string, maxBytes: number, files: number) {
    this.#path = path;
    this.#maxBytes = maxBytes;
    this.#files = files;
    this.#open(); // an unwritable path fails here, at start-up, where the operator sees it
  }

  #open(): void {
    this.#fd = openSync(this.#path, 'a', 0o640);
    this.#size = fstatSync(this.#fd).size;
  }

  /** Closes the descriptor, if any; a close that fails leaves nothing to retry. */
  #closeFd(): void {
    const fd = this.#fd;
    this.#fd = -1;
    if (fd < 0) return;
    try {
      closeSync(fd);
    } catch {
      // EBADF or EIO: the descriptor is gone either way.
    }
  }

  #rotate(): void {
    this.#closeFd();
    for (let i = this.#files - 1; i >= 1; i--) {
      if (existsSync(`${this.#path}.${i}`)) renameSync(`${this.#path}.${i}`, `${this.#path}.${i + 1}`);
    }
    renameSync(this.#path, `${this.#path}.1`);
    this.#open();
  }

  #fail(what: string, error: unknown): Failure {
    this.#closeFd();
    if (this.#failure === undefined) {
      process.stderr.write(
        `scan-backends: cannot ${what} ${this.#path}: ${(error as Error).message}; log lines are lost until it can be opened again (SIGHUP reopens it)\n`,
      );
      this.#failure = { lostLines: 0, reopenAttempts: 0, nextReopenAt: 0 };
    }
    const failure = this.#failure;
    failure.nextReopenAt = performance.now() + FIRST_REOPEN_DELAY_MS * 2 ** failure.reopenAttempts;
    return failure;
  }

  /** After a failure: opens the path again when the next bounded attempt is due. */
  #reopenIfDue(failure: Failure): boolean {
    if (this.#fd >= 0) return true;
    if (failure.reopenAttempts >= REOPEN_ATTEMPTS || performance.now() < failure.nextReopenAt) return false;
    failure.reopenAttempts += 1;
    try {
      this.#open();
      return true;
    } catch (error) {
      this.#fail('reopen', error);
      return false;
    }
  }

  write(line: string): void {
    if (this.#closed) return;
    const failure = this.#failure;
    if (failure && !this.#reopenIfDue(failure)) {
      failure.lostLines += 1;
      return;
    }
    try {
      const bytes = Buffer.byteLength(line);
      if (this.#size > 0 && this.#size + bytes > this.#maxBytes) this.#rotate();
      writeSync(this.#fd, line);
      this.#size += bytes;
    } catch (error) {
      this.#fail('write', error).lostLines += 1;
      return;
    }
    if (this.#failure !== undefined) {
      process.stderr.write(
        `scan-backends: writing ${this.#path} again; ${this.#failure.lostLines} log lines were lost\n`,
      );
      this.#failure = undefined;
    }
  }

  /** Closes and opens the path again: after logrotate moved it, or on SIGHUP. */
  reopen(): void {
    this.#closeFd();
    if (this.#failure) this.#failure.reopenAttempts = 0; // the operator asked: retries start over
    try {
      this.#open();
    } catch (error) {
      this.#fail('reopen', error);
    }
  }

  close(): void {
    this.#closed = true;
    this.#closeFd();
  }
}

const LEVEL_NAMES: Record<number, string> = { 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** pino's JSON line as a person reads it on a terminal: "12:00:01 warn msg key=value". */
export function humanLine(json: string): string {
  const { level, time, msg, ...fields } = JSON.parse(json) as Record<string, unknown>;
  delete fields.pid;
  const clock = new Date(Number(time)).toTimeString().slice(0, 8);
  const rest = Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${terminalSafe(`${clock} ${LEVEL_NAMES[Number(level)] ?? level} ${String(msg)}${rest ? ` ${rest}` : ''}`)}\n`;
}

export interface DaemonLog {
  logger: Logger;
  /** SIGHUP: reopen the log file, if there is one. */
  reopen(): void;
  close(): void;
}

/**
 * `file`: rotate there; else `human` lines on stderr (a terminal), else JSON lines on
 * `stdout` (the caller's synchronous stdout, shared with the event lines so they stay in order).
 */
export function createDaemonLog(options: {
  file?: string;
  maxBytes: number;
  files: number;
  human: boolean;
  stdout: DestinationStream;
  level: LogLevel;
}): DaemonLog {
  const settings = { base: { pid: process.pid }, level: options.level };
  if (options.file !== undefined) {
    const file = new RotatingFile(options.file, options.maxBytes, options.files);
    return {
      logger: pino(settings, file),
      reopen: () => file.reopen(),
      close: () => file.close(),
    };
  }
  const destination: DestinationStream = options.human
    ? { write: (line: string) => process.stderr.write(humanLine(line)) }
    : options.stdout;
  return { logger: pino(settings, destination), reopen: () => {}, close: () => {} };
}
