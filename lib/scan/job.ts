// The public scan API: options checked once, an engine picked, targets expanded, and results
// streamed as an async iterable whichever engine runs.
import { setMaxListeners } from 'node:events';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';

import { compareAddresses, parseAddress, type Address } from '../common/addresses.js';
import { loadBinding } from './addon/load.js';
import { InvalidOptionError, InvalidTargetError, NativeUnavailableError, ScanAbortedError } from '../common/errors.js';
import { parseHostPort } from '../common/host-port.js';
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
} from './engines/index.js';
import { chainFor, splitChain, OLLAMA_PORT, type ProbeOption } from '../probes/plan.js';
import type { GrpcDetails, Health, HttpFingerprint, ProbeName, RpcDetails, ServiceName } from '../probes/types.js';
import { verdictFromSteps, type VerdictContext } from '../probes/verdict.js';
import { createJsScanner } from './engines/js.js';
import {
  BACKENDS,
  checkChoiceOption,
  checkScanOptions,
  checkTargetListOption,
  DEFAULT_PROBE_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  ENGINES,
  rpcVersionOption,
} from '../common/options.js';
import { createNativeScanner } from './engines/native.js';
import { TargetTable } from './targets/table.js';
import type { Endpoint } from './targets/table.js';
import { expandTargets, type TargetOptions } from './targets/grammar.js';

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
  /**
   * Tell what answers on each open port: 'auto' picks probes by port (50052: ggml-rpc then
   * gRPC; 11434: Ollama; others: HTTP, gRPC, ggml-rpc), or name them in order. Default off.
   */
  probe?: ProbeOption;
  /** Each probe step's deadline, ms. Default 2000. */
  probeTimeoutMs?: number;
  /** The service the gRPC health check asks about. Default "": the whole server. */
  grpcService?: string;
  /**
   * The coordinator's ggml-rpc protocol, "x.y.z": compatibility is judged against it exactly as
   * llama.cpp does. Default $SCAN_BACKENDS_RPC_VERSION; without either, each server reports
   * the clients that can use it (`rpc.usableBy`) and none is called incompatible. null: no
   * client, whatever $SCAN_BACKENDS_RPC_VERSION says (a watcher's health checks: a server of
   * another protocol is alive all the same).
   */
  rpcVersion?: string | null;
}

export type PollerBackend = (typeof BACKENDS)[number];

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
  /** Sorted by address, then port. */
  results: ScanResult[];
  /** Present (true) when the scan was interrupted: `results` holds what was found so far. */
  interrupted?: true;
}

export interface EngineSelection {
  scanner: Scanner;
  /** Why 'auto' fell back to the JS engine, when it did. */
  fallbackReason?: string;
}

const THREADS_FROM_TARGETS = 4096;

/** The engine's options with every default filled in (the options were checked at creation). */
function engineOptions(options: ScanOptions, fdLimit: number | null, targets: number): EngineOptions {
  return {
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    concurrency: options.concurrency ?? defaultConcurrency(fdLimit),
    retries: options.retries ?? 0,
    rate: options.rate ?? 0,
    threads: options.threads ?? (targets >= THREADS_FROM_TARGETS ? availableParallelism() : 1),
    probeTimeoutMs: options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
    grpcService: options.grpcService ?? '',
  };
}

/** Picks the engine: the addon when it loads, else (for 'auto') the JS twin, saying why. */
export function selectEngine(choice: EngineChoice | undefined, backend: PollerBackend = 'auto'): EngineSelection {
  checkChoiceOption('backend', backend, BACKENDS);
  const fromEnv = choice === undefined && Boolean(process.env.SCAN_BACKENDS_ENGINE);
  const wanted = choice ?? ((process.env.SCAN_BACKENDS_ENGINE || undefined) as EngineChoice | undefined) ?? 'auto';
  checkChoiceOption(fromEnv ? '$SCAN_BACKENDS_ENGINE' : 'engine', wanted, ENGINES);
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
  readonly #scanner: Scanner;
  readonly #targets: string | readonly string[] | { endpoints: readonly Endpoint[] };
  readonly #options: ScanOptions;
  #started = false;

  /** Targets in the target grammar, or endpoints already resolved (the resolver's candidates). */
  constructor(targets: string | readonly string[] | { endpoints: readonly Endpoint[] }, options: ScanOptions = {}) {
    // Every option is checked here, before a name is resolved or a socket opened.
    checkScanOptions(options);
    if (!(typeof targets === 'object' && targets !== null && 'endpoints' in targets)) {
      checkTargetListOption('targets', targets);
    }
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
    const targets = this.#targets;
    const table =
      typeof targets === 'object' && 'endpoints' in targets
        ? TargetTable.fromEndpoints(targets.endpoints)
        : await expandTargets(targets, this.#options);
    this.targetCount = table.length;
    const options = engineOptions(this.#options, fdLimit(), table.length);
    this.concurrency = options.concurrency;
    signal?.throwIfAborted();

    const probing = Boolean(this.#options.probe);
    // Per-endpoint chains only when probing: a /16 connect scan needs none of them.
    const split = probing
      ? Array.from({ length: table.length }, (_, i) => splitChain(chainFor(table.port(i), this.#options.probe)))
      : [];
    split.forEach((chain, i) => table.setPlan(i, chain.plan));
    const verdictContext: VerdictContext = {
      rpcClientVersion: rpcVersionOption(this.#options),
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
        const onlyOllama = this.#options.probe === 'auto' && ep.port === OLLAMA_PORT;
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

function toResult(table: TargetTable, raw: RawOutcome, verdictContext: VerdictContext | undefined): ScanResult {
  const { state, error } = classifyOutcome(raw.outcome);
  const result: ScanResult = {
    host: table.host(raw.index),
    port: table.port(raw.index),
    state,
    rttMs: Math.round(raw.rttMs * 1000) / 1000,
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
  return {
    schema: 1,
    engine: job.engine,
    elapsedMs: Math.round(performance.now() - started),
    results: sortResults(results),
  };
}

export interface ProbeOptions extends Omit<ScanOptions, 'ports' | 'exclude' | 'probe'> {
  /** Which probe, or probes in order; default 'auto' (chosen by port). */
  service?: 'auto' | ProbeName | readonly ProbeName[];
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
  const report = await scanAll(host, { ...rest, ports: [port], probe: chain });
  const result = report.results[0] as ScanResult;
  if (result.state !== 'open') {
    const timeoutMs = rest.timeoutMs ?? DEFAULT_TIMEOUT_MS;
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
