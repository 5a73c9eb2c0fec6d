// The public scan API: options checked once, an engine picked, targets expanded, and results
// streamed as an async iterable whichever engine runs.
import { setMaxListeners } from 'node:events';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';

import { compareAddresses, parseAddress, type Address } from '../common/addresses.js';
import { loadBinding } from './addon/load.js';
import { InvalidOptionError, InvalidTargetError, ScanAbortedError } from '../common/errors.js';
import { parseHostPort } from '../common/host-port.js';
import {
  classifyOutcome,
  defaultConcurrency,
  procFdLimit,
  type EngineName,
  type EngineOptions,
  type EngineTiming,
  type PortState,
  type RawOutcome,
  type Scanner,
} from './engines/index.js';
import { chainFor, splitChain, OLLAMA_PORT } from '../probes/plan.js';
import type { GrpcDetails, Health, HttpFingerprint, RpcDetails, ServiceName } from '../probes/types.js';
import { verdictFromSteps, type VerdictContext } from '../probes/verdict.js';
import {
  checkTargetListOption,
  normalizeScanOptions,
  type ProbeName,
  type ProbeOption,
  type ProbeOptions,
  type ScanOptions,
  type ScanSettings,
  type ScanTiming,
} from '../common/options.js';
import { selectEngine } from './engines/choose.js';
import { TargetTable } from './targets/table.js';
import type { Endpoint } from './targets/table.js';
import { expandTargets } from './targets/grammar.js';

export type { ScanOptions, ProbeOptions, ScanTiming } from '../common/options.js';

export interface ScanResult {
  host: string;
  port: number;
  state: PortState;
  /** Time to the answer, or to the timeout for a filtered port. */
  rttMs: number;
  /** errno name, for the unreachable and error states. */
  error?: string;
  // With `probe`, for open ports:
  service?: ServiceName;
  health?: Health;
  /** The service and health are a guess (a silent port), not a proof. */
  guess?: true;
  /** A short sentence a person can act on. */
  reason?: string;
  rpc?: RpcDetails;
  grpc?: GrpcDetails;
  http?: HttpFingerprint;
}

export interface ScanReport {
  schema: 1;
  engine: EngineName;
  elapsedMs: number;
  timing?: ScanTiming;
  /** Sorted by address, then port. */
  results: ScanResult[];
  /** Present (true) when the scan was interrupted: `results` holds what was found so far. */
  interrupted?: true;
}

const THREADS_FROM_TARGETS = 4096;

/** The engine's options: the settings, and the two defaults that wait for the job's size. */
function engineOptions(settings: ScanSettings, fdLimit: number | null, targets: number): EngineOptions {
  return {
    timing: settings.timing,
    minRttTimeoutMs: settings.minRttTimeoutMs,
    timeoutMs: settings.timeoutMs,
    concurrency: settings.concurrency ?? defaultConcurrency(fdLimit),
    retries: settings.retries,
    rate: settings.rate,
    threads: settings.threads ?? (targets >= THREADS_FROM_TARGETS ? availableParallelism() : 1),
    probeTimeoutMs: settings.probeTimeoutMs,
    grpcService: settings.grpcService,
  };
}

export function fdLimit(): number | null {
  return loadBinding().binding?.fdLimit() ?? procFdLimit();
}

/** A running scan: iterate it for results as they arrive; breaking out early cancels it. */
export class ScanJob implements AsyncIterable<ScanResult> {
  readonly engine: EngineName;
  readonly fallbackReason: string | undefined;
  /** How many host:port pairs the job holds, once its targets are resolved. */
  targetCount: number | undefined;
  /** The most connects in flight at once, once the job has started. */
  concurrency: number | undefined;
  /** The timing the scan ran with, once its engine has finished (or was stopped). */
  timing: ScanTiming | undefined;
  readonly #scanner: Scanner;
  readonly #targets: string | readonly string[] | { endpoints: readonly Endpoint[] };
  /** The options with every default filled, as the job runs with them. */
  readonly settings: ScanSettings;
  #started = false;

  /** Targets in the target grammar, or endpoints already resolved (the resolver's candidates). */
  constructor(targets: string | readonly string[] | { endpoints: readonly Endpoint[] }, options: ScanOptions = {}) {
    // Every option is checked and filled here, before a name is resolved or a socket opened.
    this.settings = normalizeScanOptions(options);
    if (!(typeof targets === 'object' && targets !== null && 'endpoints' in targets)) {
      checkTargetListOption('targets', targets);
    }
    const selection = selectEngine(this.settings.engine, this.settings.poller);
    this.#scanner = selection.scanner;
    this.engine = selection.scanner.name;
    this.fallbackReason = selection.fallbackReason;
    this.#targets = targets;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ScanResult, void, undefined> {
    if (this.#started) throw new InvalidOptionError('a ScanJob can be iterated once');
    this.#started = true;
    const { signal, deadlineMs } = this.settings;
    signal?.throwIfAborted();
    const targets = this.#targets;
    const table =
      typeof targets === 'object' && 'endpoints' in targets
        ? TargetTable.fromEndpoints(targets.endpoints)
        : await expandTargets(targets, this.settings);
    this.targetCount = table.length;
    const options = engineOptions(this.settings, fdLimit(), table.length);
    this.concurrency = options.concurrency;
    signal?.throwIfAborted();

    const probing = Boolean(this.settings.probe);
    // Per-endpoint chains only when probing: a /16 connect scan needs none of them.
    const split = probing
      ? Array.from({ length: table.length }, (_, i) => splitChain(chainFor(table.port(i), this.settings.probe)))
      : [];
    split.forEach((chain, i) => table.setPlan(i, chain.plan));
    const verdictContext: VerdictContext = {
      rpcClientVersion: this.settings.rpcVersion,
      grpcService: options.grpcService,
      probeTimeoutMs: options.probeTimeoutMs,
    };
    const probeStop = new AbortController();
    setMaxListeners(0, probeStop.signal); // one listener per probe chain in flight
    const continuations = new Set<Promise<void>>();
    let engineDone = false;

    const queue = new BatchQueue<ScanResult>();
    const endIfDone = () => {
      if (engineDone && continuations.size === 0) queue.end();
    };
    const onResults = (batch: RawOutcome[]) => {
      const ready: ScanResult[] = [];
      for (const raw of batch) {
        const rest = split[raw.index]?.rest ?? [];
        const lastStep = raw.steps?.at(-1);
        const more = probing && classifyOutcome(raw.outcome).state === 'open' && rest.length > 0;
        if (!more || (lastStep && lastStep.outcome !== 'not-recognized')) {
          ready.push(toResult(table, raw, probing ? verdictContext : undefined));
          continue;
        }
        const ep = table.endpoint(raw.index);
        const onlyOllama = this.settings.probe === 'auto' && ep.port === OLLAMA_PORT;
        // The HTTP probes (node:http, node:http2) load with the first chain that needs them.
        const task = import('./after-engine.js')
          .then(({ continueChain }) =>
            continueChain(this.#scanner, ep, rest, onlyOllama, options, [...(raw.steps ?? [])], probeStop.signal),
          )
          .then((steps) => queue.push([toResult(table, { ...raw, steps }, verdictContext)]))
          .finally(() => {
            continuations.delete(task);
            endIfDone();
          });
        continuations.add(task);
      }
      if (ready.length > 0) queue.push(ready);
    };
    const run = this.#scanner.start(table, options, onResults);
    void run.finished.then(() => {
      this.timing = scanTiming(this.settings, run.timing());
      engineDone = true;
      endIfDone();
    });
    let stopReason: unknown;
    const stop = (reason: unknown) => {
      stopReason ??= reason;
      run.abort();
      probeStop.abort();
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
        for (const result of batch) {
          if (stopReason !== undefined) break;
          yield result;
        }
      }
      if (stopReason !== undefined) throw stopReason;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(deadline);
      run.abort();
      probeStop.abort();
      await run.finished;
      await Promise.allSettled([...continuations]);
    }
  }
}

const ms = (value: number) => Math.round(value * 1000) / 1000;

function scanTiming(settings: ScanSettings, engine: EngineTiming | undefined): ScanTiming | undefined {
  if (!engine) return undefined;
  return {
    mode: settings.timing,
    floorMs: settings.minRttTimeoutMs,
    ceilingMs: settings.timeoutMs,
    srttMs: engine.srttMs === null ? null : ms(engine.srttMs),
    rttvarMs: engine.rttvarMs === null ? null : ms(engine.rttvarMs),
    timeoutMs: ms(engine.timeoutMs),
    retried: engine.retried,
  };
}

function toResult(table: TargetTable, raw: RawOutcome, verdictContext: VerdictContext | undefined): ScanResult {
  const { state, error } = classifyOutcome(raw.outcome);
  const result: ScanResult = {
    host: table.host(raw.index),
    port: table.port(raw.index),
    state,
    rttMs: ms(raw.rttMs),
  };
  if (error) result.error = error;
  if (verdictContext && state === 'open') Object.assign(result, verdictFromSteps(raw.steps ?? [], verdictContext));
  return result;
}

/** Batches from engine callbacks to the consuming generator. */
class BatchQueue<T> implements AsyncIterable<T[]> {
  #batches: T[][] = [];
  #ended = false;
  #wake: (() => void) | undefined;

  push(batch: T[]): void {
    if (this.#ended) return;
    this.#batches.push(batch);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T[]> {
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
  const report: ScanReport = {
    schema: 1,
    engine: job.engine,
    elapsedMs: Math.round(performance.now() - started),
    results: sortResults(results),
  };
  if (job.timing) report.timing = job.timing;
  return report;
}

/**
 * Connects to one host:port and tells what answers there: `probe('10.0.0.7')` (port 50052),
 * `probe('10.0.0.7:8080')` or `probe('10.0.0.7', 8080)`. A port that does not connect gets
 * service and health 'unknown' with the reason. A name that resolves to several addresses is
 * probed at the first (IPv4 first).
 */
export async function probe(target: string, port?: number, options: ProbeOptions = {}): Promise<ScanResult> {
  const { service = 'auto', ...rest } = options;
  let host = target;
  if (port === undefined) {
    // "host", "host:port", "[v6]:port": the port defaults to 50052, as the CLI's does.
    const parsed = parseHostPort(target);
    if (typeof parsed === 'string' || parsed.port === 0) {
      throw new InvalidTargetError(
        target,
        `${target}: ${typeof parsed === 'string' ? parsed : 'port must be 1..65535'}`,
      );
    }
    ({ host, port } = parsed);
  }
  const chain: ProbeOption =
    service === 'auto' ? 'auto' : typeof service === 'string' ? [service as ProbeName] : service;
  const job = scan(host, { ...rest, ports: [port], probe: chain });
  const results: ScanResult[] = [];
  for await (const r of job) results.push(r);
  const result = sortResults(results)[0] as ScanResult;
  if (result.state !== 'open') {
    const timeoutMs = job.settings.timeoutMs;
    const why: Record<string, string> = {
      closed: 'connection refused',
      filtered: `no answer to the connect within ${timeoutMs} ms`,
    };
    Object.assign(result, {
      service: 'unknown',
      health: 'unknown',
      reason: why[result.state] ?? `connect failed: ${result.error ?? result.state}`,
    });
  }
  return result;
}

/** Dotted quad as a number, or -1 for anything else. */
function ipv4Number(host: string): number {
  const parts = host.split('.');
  if (parts.length !== 4) return -1;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function sortResults(results: ScanResult[]): ScanResult[] {
  // IPv4-only results (the common, and the large, case) sort on plain numbers: no per-result
  // objects, which a /16 would otherwise allocate by the 65,536.
  const keys = results.map((r) => ipv4Number(r.host));
  if (keys.every((k) => k >= 0)) {
    const order = Array.from(results.keys()).sort(
      (a, b) =>
        (keys[a] as number) - (keys[b] as number) || (results[a] as ScanResult).port - (results[b] as ScanResult).port,
    );
    return order.map((i) => results[i] as ScanResult);
  }
  const keyed = results.map((r) => ({ r, a: parseAddress(r.host) as Address }));
  keyed.sort((x, y) => compareAddresses(x.a, y.a) || x.r.port - y.r.port);
  return keyed.map((k) => k.r);
}
