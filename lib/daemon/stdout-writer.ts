// The daemons' stdout (watch, serve, run): event lines and log lines in one order, written at
// once while the reader keeps up, and never waited for. A reader that stops reading (a full
// pipe or FIFO, issue 18: pino's synchronous retry froze /healthz and SIGTERM) costs a bounded
// buffer; past it whole lines are dropped and counted, and the count is told once the reader
// has caught up.
import { EventEmitter } from 'node:events';
import { writeSync } from 'node:fs';

import type { DestinationStream } from 'pino';

/** What a stalled reader may hold back before lines are dropped: some 300 event lines. */
export const STDOUT_BUFFER_BYTES = 256 * 1024;
const STDOUT_FD = 1;
/** How often a full pipe is tried again; each try is one non-blocking write. */
const RETRY_MS = 50;
/** The most one write hands the kernel: a pipe's default capacity. */
const CHUNK_BYTES = 64 * 1024;

export interface StdoutWriterEvents {
  /** The reader caught up after lines were dropped: told once per stall. */
  drained: [{ droppedLines: number; stalledMs: number }];
  /** Writing failed for good (EPIPE: the reader went away); nothing more is written. */
  gone: [NodeJS.ErrnoException];
}

export class StdoutWriter extends EventEmitter<StdoutWriterEvents> implements DestinationStream {
  /** Lines the kernel has not taken yet; the first may be partly written (#headOffset). */
  readonly #queue: Buffer[] = [];
  #headOffset = 0;
  #queuedBytes = 0;
  #droppedLines = 0;
  #stalledSince = 0;
  #retry: NodeJS.Timeout | undefined;
  #gone = false;

  constructor() {
    super();
    // libuv opens a pipe non-blocking when process.stdout is first touched: from then on a
    // full pipe answers EAGAIN instead of blocking writeSync (and the whole process).
    void process.stdout;
  }

  write(line: string): void {
    if (this.#gone) return;
    const bytes = Buffer.from(line);
    if (this.#queuedBytes + bytes.length > STDOUT_BUFFER_BYTES) {
      this.#droppedLines += 1;
      return;
    }
    this.#queue.push(bytes);
    this.#queuedBytes += bytes.length;
    if (this.#retry === undefined) this.#flush();
  }

  /** Hands the kernel what it takes now; schedules a retry for the rest. */
  #flush(): void {
    this.#retry = undefined;
    while (this.#queue.length > 0) {
      const chunk = this.#nextChunk();
      let written: number;
      try {
        written = writeSync(STDOUT_FD, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return this.#fail(error as NodeJS.ErrnoException);
        written = 0;
      }
      this.#consume(written);
      if (written < chunk.length) {
        if (this.#stalledSince === 0) this.#stalledSince = performance.now();
        this.#retry = setTimeout(() => this.#flush(), RETRY_MS).unref();
        return;
      }
    }
    const droppedLines = this.#droppedLines;
    const stalledMs = Math.round(performance.now() - this.#stalledSince);
    this.#droppedLines = 0;
    this.#stalledSince = 0;
    // A listener's own line goes out at once: the queue is empty.
    if (droppedLines > 0) this.emit('drained', { droppedLines, stalledMs });
  }

  /** The queue's start, up to CHUNK_BYTES (or the one line that is longer), as one buffer. */
  #nextChunk(): Buffer {
    const parts: Buffer[] = [];
    let size = 0;
    for (const [i, line] of this.#queue.entries()) {
      const part = i === 0 ? line.subarray(this.#headOffset) : line;
      if (i > 0 && size + part.length > CHUNK_BYTES) break;
      parts.push(part);
      size += part.length;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
  }

  #consume(written: number): void {
    this.#queuedBytes -= written;
    let left = this.#headOffset + written;
    for (let head = this.#queue[0]; head !== undefined && left >= head.length; head = this.#queue[0]) {
      left -= head.length;
      this.#queue.shift();
    }
    this.#headOffset = left;
  }

  #fail(error: NodeJS.ErrnoException): void {
    this.#stop();
    this.emit('gone', error);
  }

  #stop(): void {
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#gone = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#droppedLines = 0;
  }

  /**
   * Waits up to `flushMs` for the reader to take what is queued, then stops writing. Resolves
   * with the lines a stalled reader never got (queued or dropped), for the caller to say; none
   * when the reader went away.
   */
  async close(flushMs: number): Promise<number> {
    const deadline = performance.now() + flushMs;
    while (this.#queue.length > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS)); // the retry timer writes
    }
    const unwritten = this.#droppedLines + this.#queue.length;
    this.#stop();
    return unwritten;
  }
}
