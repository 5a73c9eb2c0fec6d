// --on-change CMD: when the set of usable backends changes, run CMD with the new list in
// $SCAN_BACKENDS_RPC and the full view as JSON on stdin. Debounced (a flapping network runs
// it once), never two at once, killed past its time limit; its exit and stderr tail logged. A
// run ends when the command exits: the coordinator it starts is left alone.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';

/** How much of the command's stderr the log keeps: its end, where the error usually is. */
const STDERR_TAIL_BYTES = 2048;
/**
 * After the command exits, how long its stderr may stay open to yield its last lines: past
 * this, a process it started that keeps the pipe is not waited for.
 */
const STDERR_AFTER_EXIT_MS = 200;
/** After SIGTERM, the command's process group gets this long before SIGKILL. */
const KILL_GRACE_MS = 3000;

/**
 * Splits a command line into argv the way a user expects without a shell: spaces separate,
 * quotes group, a backslash escapes; nothing is expanded. Throws on an unclosed quote.
 */
export function splitCommand(line: string): string[] {
  const argv: string[] = [];
  let current: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) current = `${current ?? ''}${line[++i]}`;
      else current = `${current ?? ''}${c}`;
    } else if (c === '"' || c === "'") {
      quote = c;
      current ??= '';
    } else if (c === '\\' && i + 1 < line.length) current = (current ?? '') + line[++i];
    else if (/\s/.test(c)) {
      if (current !== undefined) argv.push(current);
      current = undefined;
    } else current = (current ?? '') + c;
  }
  if (quote) throw new Error(`unclosed ${quote} quote`);
  if (current !== undefined) argv.push(current);
  return argv;
}

export interface OnChangeLog {
  (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>): void;
}

export interface OnChangeOptions {
  argv: readonly string[];
  settleMs: number;
  timeoutMs: number;
  log: OnChangeLog;
}

export class OnChangeRunner {
  readonly #options: OnChangeOptions;
  /** The list the last run was started with; '' before any. */
  #lastRun = '';
  #pending?: { rpc: string; json: string };
  #timer?: NodeJS.Timeout;
  #running?: Promise<void>;
  #child?: ChildProcess;
  #closed = false;
  runs = 0;

  constructor(options: OnChangeOptions) {
    this.#options = options;
  }

  /** The usable list changed: run once it has been still for `settleMs`. */
  update(rpc: string, json: string): void {
    if (this.#closed) return;
    this.#pending = { rpc, json };
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#settled(), this.#options.settleMs);
  }

  #settled(): void {
    this.#timer = undefined;
    if (this.#running || this.#closed) return; // the running one's end looks again
    const next = this.#pending;
    this.#pending = undefined;
    if (!next || next.rpc === this.#lastRun) return;
    this.#lastRun = next.rpc;
    this.#running = this.#run(next.rpc, next.json).finally(() => {
      this.#running = undefined;
      if (this.#pending && !this.#timer) this.#settled();
    });
  }

  #run(rpc: string, json: string): Promise<void> {
    const [file, ...args] = this.#options.argv as [string, ...string[]];
    const { log, timeoutMs } = this.#options;
    const started = performance.now();
    this.runs += 1;
    log('info', 'on-change: running', { command: this.#options.argv.join(' '), rpc });
    return new Promise((resolve) => {
      // Its own process group, so a time limit ends the command and whatever it started.
      const child = spawn(file, args, {
        detached: true,
        stdio: ['pipe', 'ignore', 'pipe'],
        env: { ...process.env, SCAN_BACKENDS_RPC: rpc },
      });
      this.#child = child;
      let stderr = Buffer.alloc(0);
      let finished = false;
      child.stderr?.on('data', (chunk: Buffer) => {
        // After the run, what a process it started writes there is read and dropped: a pipe
        // nobody reads would block it once full, a closed one would kill it with SIGPIPE.
        if (!finished) stderr = Buffer.concat([stderr, chunk]).subarray(-STDERR_TAIL_BYTES);
      });
      child.stdin?.on('error', () => {}); // a command that does not read its stdin
      child.stdin?.end(json);
      let timedOut = false;
      const limit = setTimeout(() => {
        timedOut = true;
        log('error', 'on-change: time limit reached; stopping it', { timeoutMs });
        this.#stop(child);
      }, timeoutMs);
      const elapsedMs = () => Math.round(performance.now() - started);
      let afterExit: NodeJS.Timeout | undefined;
      // One run, said once: after 'exit', stderr's close and the grace below race to end it.
      const done = (fields: Record<string, unknown>, failed: boolean) => {
        if (finished) return;
        finished = true;
        clearTimeout(limit);
        clearTimeout(afterExit);
        this.#child = undefined;
        const stderrLeftOpen = child.stderr !== null && !child.stderr.closed;
        if (stderrLeftOpen) (child.stderr as Socket).unref();
        child.stdin?.destroy();
        const tail = stderr.toString('utf8').trim();
        log(failed ? 'error' : 'info', failed ? 'on-change: failed' : 'on-change: done', {
          ...fields,
          ...(stderrLeftOpen ? { stderrLeftOpen } : {}),
          ...(tail ? { stderrTail: tail } : {}),
        });
        resolve();
      };
      child.on('error', (error) => done({ error: error.message, elapsedMs: elapsedMs() }, true));
      // The run ends with the command: what it started (a coordinator in the background, in a
      // session of its own or not) may keep the stderr pipe open for as long as it runs.
      child.on('exit', (code, signal) => {
        clearTimeout(limit);
        const fields = {
          exitCode: code,
          ...(signal ? { signal } : {}),
          ...(timedOut ? { timedOut } : {}),
          elapsedMs: elapsedMs(),
        };
        const end = () => done(fields, code !== 0);
        if (child.stderr === null || child.stderr.closed) return end();
        child.stderr.once('close', end);
        afterExit = setTimeout(end, STDERR_AFTER_EXIT_MS);
      });
    });
  }

  /** Stops a command past its time: SIGTERM to its process group, SIGKILL past the grace. */
  #stop(child: ChildProcess): void {
    const kill = (signal: NodeJS.Signals) => {
      // Once the command has exited, what is left in its group it started on purpose.
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    kill('SIGTERM');
    setTimeout(() => kill('SIGKILL'), KILL_GRACE_MS).unref();
  }

  /**
   * Shutdown: no new run; a run in flight gets until `graceMs` to finish, then its process
   * group is stopped.
   */
  async close(graceMs: number): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    if (!this.#running) return;
    const running = this.#running;
    const grace = setTimeout(() => this.#child && this.#stop(this.#child), graceMs);
    await running;
    clearTimeout(grace);
  }
}
