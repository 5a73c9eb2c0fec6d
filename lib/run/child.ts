// The coordinator as a child process: started without a shell, in a process group of its own
// (so a stop reaches whatever it starts), its stdout and stderr passed through and each line
// handed to the log. It never outlives us: with util-linux's setpriv the kernel kills it when
// we die, even of SIGKILL (PR_SET_PDEATHSIG, kept across its exec); and an exit handler kills
// its group when we exit any other way.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { write } from 'node:fs';

import { peerText } from '../common/peer-text.js';

/** A line the child writes longer than this is cut: the log gets its start. */
const MAX_LINE_BYTES = 8192;
/** A log line carries at most this much of the child's line. */
const LOGGED_CHARS = 2000;
/** Output a stalled reader of the pass-through may hold back; past it, output is dropped. */
const PASS_THROUGH_BUFFER_BYTES = 256 * 1024;
/** How soon a descriptor that answered EAGAIN (a full non-blocking pipe) is tried again. */
const PASS_THROUGH_RETRY_MS = 50;

let setprivChecked: boolean | undefined;

/** Whether `setpriv --pdeathsig` exists here (util-linux 2.33+); asked once. */
export function hasPdeathsig(): boolean {
  if (setprivChecked !== undefined) return setprivChecked;
  setprivChecked = false;
  if (process.platform !== 'linux') return false;
  try {
    const help = execFileSync('setpriv', ['--help'], { encoding: 'utf8', timeout: 2000, stdio: 'pipe' });
    setprivChecked = help.includes('--pdeathsig');
  } catch {
    // not installed
  }
  return setprivChecked;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildOptions {
  /** Each line of its output (without the line end), made safe to print and bounded. */
  onLine: (stream: 'stdout' | 'stderr', line: string) => void;
  /** The descriptor its raw output goes to too (default 2: our stdout is the event stream); null: none. */
  passThroughFd?: number | null;
}

export class CoordinatorChild {
  readonly pid: number;
  readonly argv: readonly string[];
  /** Whether the kernel kills it when we die (setpriv --pdeathsig). */
  readonly diesWithUs: boolean;
  readonly exited: Promise<ChildExit>;
  #exit?: ChildExit;
  readonly #killOnExit = () => this.#signalGroup('SIGKILL');

  private constructor(child: ChildProcess, argv: readonly string[], diesWithUs: boolean) {
    this.pid = child.pid as number;
    this.argv = argv;
    this.diesWithUs = diesWithUs;
    process.on('exit', this.#killOnExit);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        process.off('exit', this.#killOnExit);
        resolve(this.#exit);
      }),
    );
  }

  /** Starts `argv` (no shell); rejects when it cannot be started (no such file, not executable). */
  static async start(argv: readonly string[], options: ChildOptions): Promise<CoordinatorChild> {
    const [file, ...args] = argv;
    if (file === undefined) throw new Error('no command to start');
    const diesWithUs = hasPdeathsig();
    // setpriv sets the parent-death signal, then execs the command: its pid is the command's.
    const [spawnFile, spawnArgs] = diesWithUs
      ? ['setpriv', ['--pdeathsig', 'KILL', '--', file, ...args]]
      : [file, args];
    const child = spawn(spawnFile, spawnArgs, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    const started = new CoordinatorChild(child, argv, diesWithUs);
    const fd = options.passThroughFd === undefined ? 2 : options.passThroughFd;
    const out = fd === null ? undefined : new PassThrough(fd);
    for (const stream of ['stdout', 'stderr'] as const) {
      const readable = child[stream];
      if (!readable) continue;
      const lines = new LineSplitter((line) => options.onLine(stream, line));
      readable.on('data', (chunk: Buffer) => {
        out?.push(chunk);
        lines.push(chunk);
      });
      readable.on('end', () => lines.flush());
      readable.on('error', () => {});
    }
    return started;
  }

  /** Its exit, once it exited. */
  get exit(): ChildExit | undefined {
    return this.#exit;
  }

  /**
   * Stops it and its group: SIGTERM, then SIGKILL after `graceMs`; resolves with its exit.
   * The group is signalled, not just the child: whatever it started goes with it.
   */
  async stop(graceMs: number): Promise<ChildExit> {
    if (this.#exit) return this.#exit;
    this.#signalGroup('SIGTERM');
    const timer = setTimeout(() => this.#signalGroup('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
      // Anything of its group that ignored SIGTERM goes now.
      this.#signalGroup('SIGKILL');
    }
  }

  #signalGroup(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch {
      // the group is gone already
    }
  }
}

/**
 * The child's raw output on to a descriptor, one write in flight at a time off the event loop:
 * a reader that stalls (a full stderr pipe) costs a bounded buffer, then output is dropped;
 * it never blocks us (process.stderr writes a pipe synchronously) nor the child.
 */
class PassThrough {
  readonly #fd: number;
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #writing = false;
  #gone = false;

  constructor(fd: number) {
    this.#fd = fd;
  }

  push(chunk: Buffer): void {
    if (this.#gone || this.#queuedBytes + chunk.length > PASS_THROUGH_BUFFER_BYTES) return;
    this.#queue.push(chunk);
    this.#queuedBytes += chunk.length;
    this.#next();
  }

  #next(): void {
    if (this.#writing || this.#queue.length === 0) return;
    const buffer = Buffer.concat(this.#queue);
    this.#queue = [];
    this.#writing = true;
    write(this.#fd, buffer, (error, written) => {
      this.#writing = false;
      if (error && error.code !== 'EAGAIN') {
        // The reader is gone for good (EPIPE, a closed descriptor): nothing more is written.
        [this.#gone, this.#queue, this.#queuedBytes] = [true, [], 0];
        return;
      }
      const done = error ? 0 : written;
      this.#queuedBytes -= done;
      if (done < buffer.length) this.#queue.unshift(buffer.subarray(done));
      if (error) setTimeout(() => this.#next(), PASS_THROUGH_RETRY_MS).unref();
      else this.#next();
    });
  }
}

/** Bytes to lines, each bounded: a line longer than MAX_LINE_BYTES is cut at that length. */
class LineSplitter {
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #cut = false;
  readonly #emit: (line: string) => void;

  constructor(emit: (line: string) => void) {
    this.#emit = emit;
  }

  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      this.#keep(chunk.subarray(start, nl));
      this.flush();
      start = nl + 1;
    }
    this.#keep(chunk.subarray(start));
  }

  flush(): void {
    if (this.#pendingBytes === 0 && !this.#cut) return;
    const text = Buffer.concat(this.#pending).toString('utf8').replace(/\r$/, '');
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#cut = false;
    this.#emit(peerText(text, LOGGED_CHARS));
  }

  #keep(part: Buffer): void {
    const room = MAX_LINE_BYTES - this.#pendingBytes;
    if (part.length > room) this.#cut = true;
    const kept = part.subarray(0, Math.max(0, room));
    if (kept.length === 0) return;
    this.#pending.push(kept);
    this.#pendingBytes += kept.length;
  }
}
