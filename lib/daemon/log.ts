// The daemon's log: pino JSON lines, written synchronously (a line logged before exit is a
// line on disk). On stdout by default, for journald; to a file rotated by size with
// --log-file (SIGHUP reopens it, for logrotate); as short human lines on a terminal.
import { closeSync, existsSync, fstatSync, openSync, renameSync, writeSync } from 'node:fs';

import { pino, type DestinationStream, type Logger } from 'pino';

import { terminalSafe } from '../peer-text.js';

export const DEFAULT_LOG_MAX_BYTES = 50 * 1024 * 1024;
export const DEFAULT_LOG_FILES = 5;
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A log file that rotates by size: past `maxBytes` the file becomes FILE.1 (FILE.1 becomes
 * FILE.2 …, the oldest beyond `files` is dropped) and a new FILE is started. A write that
 * fails (disk full) is said once on stderr and never throws into the caller.
 */
export class RotatingFile implements DestinationStream {
  readonly #path: string;
  readonly #maxBytes: number;
  readonly #files: number;
  #fd = -1;
  #size = 0;
  #failed = false;

  constructor(path: string, maxBytes = DEFAULT_LOG_MAX_BYTES, files = DEFAULT_LOG_FILES) {
    this.#path = path;
    this.#maxBytes = maxBytes;
    this.#files = files;
    this.#open(); // an unwritable path fails here, at start-up, where the operator sees it
  }

  #open(): void {
    this.#fd = openSync(this.#path, 'a', 0o640);
    this.#size = fstatSync(this.#fd).size;
  }

  #rotate(): void {
    closeSync(this.#fd);
    for (let i = this.#files - 1; i >= 1; i--) {
      if (existsSync(`${this.#path}.${i}`)) renameSync(`${this.#path}.${i}`, `${this.#path}.${i + 1}`);
    }
    renameSync(this.#path, `${this.#path}.1`);
    this.#open();
  }

  write(line: string): void {
    try {
      const bytes = Buffer.byteLength(line);
      if (this.#size > 0 && this.#size + bytes > this.#maxBytes) this.#rotate();
      writeSync(this.#fd, line);
      this.#size += bytes;
      this.#failed = false;
    } catch (error) {
      if (!this.#failed)
        process.stderr.write(`scan-backends: cannot write ${this.#path}: ${(error as Error).message}\n`);
      this.#failed = true;
    }
  }

  /** Closes and opens the path again: after logrotate moved it, or on SIGHUP. */
  reopen(): void {
    try {
      closeSync(this.#fd);
      this.#open();
    } catch (error) {
      process.stderr.write(`scan-backends: cannot reopen ${this.#path}: ${(error as Error).message}\n`);
    }
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
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
  maxBytes?: number;
  files?: number;
  human: boolean;
  stdout: DestinationStream;
  level?: LogLevel;
}): DaemonLog {
  const settings = { base: { pid: process.pid }, level: options.level ?? 'info' };
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
