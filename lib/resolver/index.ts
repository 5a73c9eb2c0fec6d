// resolveBackends(): the priority chain. Each source names candidates; every candidate is
// verified before it is returned; the first source with a live backend wins (or, with
// `merge`, all are unioned). Verified backends are recorded in Redis when one is configured.
import { InvalidOptionError, SourceUnavailableError } from '../errors.js';
import { formatHostPort } from '../host-port.js';
import type { EngineChoice } from '../scanner/index.js';
import { systemLookup, type LookupFn } from '../targets.js';
import { configCandidates, configSearchPath } from './config-file.js';
import { scanSource } from './network-scan.js';
import { processCandidates } from './process.js';
import { RedisRegistry } from './redis-cache.js';
import {
  SOURCE_NAMES,
  type Backend,
  type Dropped,
  type Resolution,
  type SourceName,
  type SourceReport,
} from './types.js';
import { verifyCandidates } from './verify.js';

/** llama.cpp's coordinator takes at most this many RPC servers (GGML_RPC_MAX_SERVERS). */
export const MAX_COORDINATOR_BACKENDS = 16;

export interface ResolveOptions {
  /** Sources in order. Default: process, config, scan, redis. */
  sources?: readonly SourceName[];
  /** Union of all sources instead of the first that yields a live backend. */
  merge?: boolean;
  /** Default true; false returns candidates marked `verified: false`. */
  verify?: boolean;
  /** Config file; default $SCAN_BACKENDS_CONFIG, ./rpc_backends.conf, $XDG_CONFIG_HOME/…, /etc/…. */
  configPath?: string;
  /** A bad config line is an error instead of a warning. */
  strict?: boolean;
  /** What the scan source scans (target grammar); default the local private subnets. */
  subnet?: string | readonly string[];
  /** Ports for the scan source; default 50052. */
  ports?: number | readonly number[] | string;
  /** Redis URL; default $SCAN_BACKENDS_REDIS. Without one the redis source is skipped. */
  redisUrl?: string;
  redisPrefix?: string;
  redisTtlSeconds?: number;
  /** Redis down is an error (SourceUnavailableError) instead of a note. */
  requireRedis?: boolean;
  timeoutMs?: number;
  probeTimeoutMs?: number;
  rpcVersion?: string;
  engine?: EngineChoice;
  signal?: AbortSignal;
  /** Name resolution for candidates; default the system resolver. */
  lookup?: LookupFn;
}

function checkSources(sources: readonly string[]): asserts sources is SourceName[] {
  for (const s of sources) {
    if (!SOURCE_NAMES.includes(s as SourceName)) {
      throw new InvalidOptionError(`sources: unknown source "${s}"; known: ${SOURCE_NAMES.join(', ')}`);
    }
  }
}

export async function resolveBackends(options: ResolveOptions = {}): Promise<Resolution> {
  const order = options.sources ?? SOURCE_NAMES;
  checkSources(order);
  const verify = options.verify ?? true;
  const lookup = options.lookup ?? systemLookup;
  const verifyOptions = {
    timeoutMs: options.timeoutMs,
    probeTimeoutMs: options.probeTimeoutMs,
    rpcVersion: options.rpcVersion,
    engine: options.engine,
    signal: options.signal,
    verify,
    lookup,
  };
  const warnings: string[] = [];
  const reports: SourceReport[] = [];
  const backends = new Map<string, Backend>();

  const redisUrl = options.redisUrl ?? process.env.SCAN_BACKENDS_REDIS;
  let registry: RedisRegistry | undefined;
  let redisError: string | undefined;
  if (redisUrl) {
    try {
      registry = await RedisRegistry.connect({
        url: redisUrl,
        prefix: options.redisPrefix,
        ttlSeconds: options.redisTtlSeconds,
      });
    } catch (error) {
      redisError = `Redis unavailable at ${redisUrl}: ${(error as Error).message}`;
      if (options.requireRedis) throw new SourceUnavailableError(redisError, { cause: error });
      warnings.push(redisError);
    }
  } else if (options.requireRedis) {
    throw new SourceUnavailableError('--require-redis: no Redis URL (--redis or $SCAN_BACKENDS_REDIS)');
  }

  const add = (kept: Backend[]) => {
    for (const b of kept) {
      const key = formatHostPort(b);
      const known = backends.get(key);
      if (!known) {
        // Keys in the documented order: host, port, sources, verified, then the details.
        const { host, port, sources, verified, ...details } = b;
        backends.set(key, { host, port, sources: [...sources], verified, ...details });
        continue;
      }
      for (const s of b.sources) if (!known.sources.includes(s)) known.sources.push(s);
    }
  };

  try {
    for (const name of order) {
      options.signal?.throwIfAborted();
      const report: SourceReport = { name, status: 'empty', found: 0, dropped: [] };
      reports.push(report);
      if (!options.merge && backends.size > 0) {
        report.status = 'skipped';
        report.message = 'an earlier source found live backends (--merge asks every source)';
        continue;
      }
      try {
        let kept: Backend[] = [];
        let dropped: Dropped[] = [];
        if (name === 'process') {
          const found = await processCandidates();
          report.found = found.candidates.length + found.dropped.length;
          report.message = found.message;
          ({ kept, dropped } = await verifyCandidates(found.candidates, verifyOptions));
          dropped.unshift(...found.dropped);
        } else if (name === 'config') {
          const found = await configCandidates(options.configPath, options.strict ?? false);
          if (!found) {
            report.message = `no config file (looked for ${configSearchPath(undefined).join(', ')})`;
          } else {
            report.found = found.candidates.length + found.dropped.length;
            report.message = found.file;
            if (found.warnings.length > 0) report.warnings = found.warnings;
            ({ kept, dropped } = await verifyCandidates(found.candidates, verifyOptions));
            dropped.unshift(...found.dropped);
          }
        } else if (name === 'scan') {
          const found = await scanSource({ ...verifyOptions, subnet: options.subnet, ports: options.ports });
          report.found = found.found;
          report.message = found.message;
          ({ kept, dropped } = found);
        } else if (!registry) {
          report.status = redisError ? 'error' : 'skipped';
          report.message = redisError ?? 'no Redis URL (--redis or $SCAN_BACKENDS_REDIS)';
          continue;
        } else {
          const found = await registry.candidates();
          report.found = found.length;
          report.message = registry.url;
          ({ kept, dropped } = await verifyCandidates(found, verifyOptions));
          // Entries that were checked and did not answer leave the registry.
          if (verify) await registry.remove(dropped);
        }
        report.dropped = dropped;
        report.status = kept.length > 0 ? 'ok' : 'empty';
        add(kept);
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        if ((error as { code?: string }).code === 'SB_INVALID_TARGET') throw error; // --strict, --subnet
        report.status = 'error';
        report.message = (error as Error).message;
        if (name === 'redis') warnings.push(`Redis unavailable at ${redisUrl}: ${report.message}`);
      }
    }

    const live = [...backends.values()];
    if (registry && live.some((b) => b.verified)) {
      try {
        await registry.record(live);
      } catch (error) {
        warnings.push(`Redis unavailable at ${redisUrl}: could not record backends: ${(error as Error).message}`);
      }
    }
    const verified = live.filter((b) => b.verified).length;
    if (verified > MAX_COORDINATOR_BACKENDS) {
      warnings.push(`${verified} live backends: llama.cpp's coordinator takes at most ${MAX_COORDINATOR_BACKENDS}`);
    }
    return { backends: live, sources: reports, warnings };
  } finally {
    await registry?.close();
  }
}

export type { Backend, Candidate, Dropped, Resolution, SourceName, SourceReport } from './types.js';
export { SOURCE_NAMES } from './types.js';
export { parseConfig } from './config-file.js';
export { parseRpcList, rpcLists } from './process.js';
