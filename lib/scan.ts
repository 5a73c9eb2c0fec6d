// The public scan API: options checked once, an engine picked, targets expanded, and results
// streamed as an async iterable whichever engine runs.
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';

import { compareAddresses, parseAddress, type Address } from './addresses.js';
import { loadBinding } from './binding.js';
import { InvalidOptionError, NativeUnavailableError, ScanAbortedError } from './errors.js';
import {
  classifyOutcome,
  defaultConcurrency,
  procFdLimit,
  type EngineChoice,
  type EngineName,
  type EngineOptions,
  type PortState,
  type RawOutcome,
  type Scanner,
} from './scanner/index.js';
import { createJsScanner } from './scanner/js.js';
import { createNativeScanner } from './scanner/native.js';
import { resolveTargets, type Endpoint, type TargetOptions } from './targets.js';

export interface ScanOptions extends TargetOptions {
  /** Connect timeout per attempt, ms. Default 1000. */
  timeoutMs?: number;
  /** Sockets in flight at once. Default: what RLIMIT_NOFILE allows, capped at 16,384. */
  concurrency?: number;
  /** Extra attempts for targets that stayed silent. Default 0. */
  retries?: number;
  /** New connects per second. Default 0: unlimited. */
  rate?: number;
  /** A deadline for the whole scan, ms; reaching it rejects with an AbortError. */
  deadlineMs?: number;
  signal?: AbortSignal;
  /** 'auto' (default; env SCAN_BACKENDS_ENGINE) uses the addon and falls back to 'js'. */
  engine?: EngineChoice;
  /** Native scan threads. Default: one, or one per core from 4,096 targets. */
  threads?: number;
  /** The native engine's readiness mechanism. Default 'auto': epoll, kqueue, else poll. */
  backend?: PollerBackend;
}

export type PollerBackend = 'auto' | 'epoll' | 'kqueue' | 'poll';
const BACKENDS: readonly PollerBackend[] = ['auto', 'epoll', 'kqueue', 'poll'];

export interface ScanResult {
  host: string;
  port: number;
  state: PortState;
  /** Time to the answer, or to the timeout for a filtered port. */
  rttMs: number;
  /** errno name, for the unreachable and error states. */
  error?: string;
}

export interface ScanReport {
  schema: 1;
  engine: EngineName;
  elapsedMs: number;
  /** Sorted by address, then port. */
  results: ScanResult[];
}

export interface EngineSelection {
  scanner: Scanner;
  /** Why 'auto' fell back to the JS engine, when it did. */
  fallbackReason?: string;
}

const THREADS_FROM_TARGETS = 4096;

function checkInteger(name: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${name}: must be an integer ${min}..${max}, got ${value}`);
  }
}

function engineOptions(options: ScanOptions, fdLimit: number | null, targets: number): EngineOptions {
  checkInteger('timeoutMs', options.timeoutMs, 1, 3_600_000);
  checkInteger('concurrency', options.concurrency, 1, 1_000_000);
  checkInteger('retries', options.retries, 0, 10);
  checkInteger('threads', options.threads, 1, 64);
  checkInteger('deadlineMs', options.deadlineMs, 1, 86_400_000);
  if (options.rate !== undefined && !(Number.isFinite(options.rate) && options.rate >= 0)) {
    throw new InvalidOptionError(`rate: must be a number >= 0 (0: unlimited), got ${options.rate}`);
  }
  return {
    timeoutMs: options.timeoutMs ?? 1000,
    concurrency: options.concurrency ?? defaultConcurrency(fdLimit),
    retries: options.retries ?? 0,
    rate: options.rate ?? 0,
    threads: options.threads ?? (targets >= THREADS_FROM_TARGETS ? availableParallelism() : 1),
  };
}

/** Picks the engine: the addon when it loads, else (for 'auto') the JS twin, saying why. */
export function selectEngine(choice: EngineChoice | undefined, backend: PollerBackend = 'auto'): EngineSelection {
  if (!BACKENDS.includes(backend)) {
    throw new InvalidOptionError(`backend: must be ${BACKENDS.join(', ')}, got ${String(backend)}`);
  }
  const wanted = choice ?? (process.env.SCAN_BACKENDS_ENGINE as EngineChoice | undefined) ?? 'auto';
  if (wanted !== 'auto' && wanted !== 'native' && wanted !== 'js') {
    throw new InvalidOptionError(`engine: must be auto, native or js, got ${String(wanted)}`);
  }
  if (wanted === 'js') return { scanner: createJsScanner() };
  const load = loadBinding();
  if (load.binding) return { scanner: createNativeScanner(load.binding, backend) };
  if (wanted === 'native') {
    throw new NativeUnavailableError(`native engine unavailable: ${load.error.message}`, { cause: load.error });
  }
  return {
    scanner: createJsScanner(),
    fallbackReason: `native addon unavailable (${load.error.message.split('\n')[0]})`,
  };
}

function fdLimit(): number | null {
  return loadBinding().binding?.fdLimit() ?? procFdLimit();
}

/** A running scan: iterate it for results as they arrive; breaking out early cancels it. */
export class ScanJob implements AsyncIterable<ScanResult> {
  readonly engine: EngineName;
  readonly fallbackReason: string | undefined;
  /** How many host:port pairs the job holds, once its targets are resolved. */
  targetCount: number | undefined;
  readonly #scanner: Scanner;
  readonly #targets: string | readonly string[];
  readonly #options: ScanOptions;
  #started = false;

  constructor(targets: string | readonly string[], options: ScanOptions = {}) {
    const selection = selectEngine(options.engine, options.backend);
    this.#scanner = selection.scanner;
    this.engine = selection.scanner.name;
    this.fallbackReason = selection.fallbackReason;
    this.#targets = targets;
    this.#options = options;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ScanResult, void, undefined> {
    if (this.#started) throw new InvalidOptionError('a ScanJob can be iterated once');
    this.#started = true;
    const { signal, deadlineMs } = this.#options;
    signal?.throwIfAborted();
    const endpoints = await resolveTargets(this.#targets, this.#options);
    this.targetCount = endpoints.length;
    const options = engineOptions(this.#options, fdLimit(), endpoints.length);
    signal?.throwIfAborted();

    const queue = new BatchQueue();
    const run = this.#scanner.start(endpoints, options, (batch) => queue.push(batch));
    void run.finished.then(() => queue.end());
    let stopReason: unknown;
    const stop = (reason: unknown) => {
      stopReason ??= reason;
      run.abort();
      queue.end();
    };
    const onAbort = () => stop(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const deadline =
      deadlineMs === undefined
        ? undefined
        : setTimeout(() => stop(new ScanAbortedError(`scan deadline of ${deadlineMs} ms reached`)), deadlineMs);
    try {
      for await (const batch of queue) {
        for (const raw of batch) {
          if (stopReason !== undefined) break;
          yield toResult(endpoints, raw);
        }
      }
      if (stopReason !== undefined) throw stopReason;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(deadline);
      run.abort();
      await run.finished;
    }
  }
}

function toResult(endpoints: readonly Endpoint[], raw: RawOutcome): ScanResult {
  const ep = endpoints[raw.index] as Endpoint;
  const { state, error } = classifyOutcome(raw.outcome);
  const result: ScanResult = { host: ep.host, port: ep.port, state, rttMs: Math.round(raw.rttMs * 1000) / 1000 };
  if (error) result.error = error;
  return result;
}

/** Batches from engine callbacks to the consuming generator. */
class BatchQueue implements AsyncIterable<RawOutcome[]> {
  #batches: RawOutcome[][] = [];
  #ended = false;
  #wake: (() => void) | undefined;

  push(batch: RawOutcome[]): void {
    if (this.#ended) return;
    this.#batches.push(batch);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<RawOutcome[]> {
    for (;;) {
      const batch = this.#batches.shift();
      if (batch) {
        yield batch;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }
}

/** Starts a scan; iterate the returned job for results as they arrive. */
export function scan(targets: string | readonly string[], options: ScanOptions = {}): ScanJob {
  return new ScanJob(targets, options);
}

/** Scans and collects every result, sorted by address then port. */
export async function scanAll(targets: string | readonly string[], options: ScanOptions = {}): Promise<ScanReport> {
  const started = performance.now();
  const job = scan(targets, options);
  const results: ScanResult[] = [];
  for await (const result of job) results.push(result);
  return {
    schema: 1,
    engine: job.engine,
    elapsedMs: Math.round(performance.now() - started),
    results: sortResults(results),
  };
}

export function sortResults(results: ScanResult[]): ScanResult[] {
  const keyed = results.map((r) => ({ r, a: parseAddress(r.host) as Address }));
  keyed.sort((x, y) => compareAddresses(x.a, y.a) || x.r.port - y.r.port);
  return keyed.map((k) => k.r);
}
