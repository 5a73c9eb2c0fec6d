// resolveBackends(): the priority chain. Each source names candidates; every candidate is
// verified before it is returned; the first source with a live backend wins (or, with
// `merge`, all are unioned). Verified backends are recorded in Redis when one is configured.
import { SourceUnavailableError } from '../common/errors.js';
import { formatHostPort } from '../common/host-port.js';
import { normalizeResolveOptions, redactUrl, type ResolveOptions } from '../common/options.js';
import { RedisRegistry } from '../redis/registry.js';
import { chooseCompatibleGroup, CLIENT_RULE, GROUP_RULE } from './compatibility.js';
import { configCandidates, type LoadedConfig } from './config-file.js';
import { scanSource } from './network-scan.js';
import { processCandidates, type ProcessFindings } from './process.js';
import type { Backend, Dropped, Resolution, SourceReport } from './types.js';
import { verifyCandidates, Witnesses, type VerifyContext } from './verify.js';

/** llama.cpp's coordinator takes at most this many RPC servers (GGML_RPC_MAX_SERVERS). */
export const MAX_COORDINATOR_BACKENDS = 16;

export type { ResolveOptions };

/** For the watcher: it reads the config file itself, to keep the last good one over a bad edit. */
export interface ResolveHooks {
  loadConfig?: () => Promise<LoadedConfig | null>;
  /**
   * Remove registry entries this resolve could not reach (default true). Watchers sharing a
   * Redis pass false: an entry leaves only when no watcher has seen it alive within the TTL.
   */
  pruneRegistry?: boolean;
  /**
   * Keep every live server whatever its protocol, judged by nothing but its answer (the
   * watcher: it follows them all and applies the compatibility rule to its usable set).
   * `compatibility` still says the client version, when one is known.
   */
  keepEveryProtocol?: boolean;
  /**
   * The registry over a connection that is already open (a watcher's live one), or why there
   * is none now: used instead of connecting one for this resolve, and left open after it.
   */
  registry?: (ttlSeconds: number) => RedisRegistry | string;
}

export async function resolveBackends(given: ResolveOptions = {}, hooks: ResolveHooks = {}): Promise<Resolution> {
  const options = normalizeResolveOptions(given);
  const { sources: order, verify, lookup, redisUrl, redisTtlSeconds: ttlSeconds } = options;
  const warnings: string[] = [];
  const reports: SourceReport[] = [];
  const backends = new Map<string, Backend>();

  // Redis is connected to only when something needs it (the redis source, a witness, a write),
  // once, with a deadline; a source that does not need it never waits for it.
  let registryPromise: Promise<RedisRegistry | string> | undefined;
  const registry = (): Promise<RedisRegistry | string> =>
    (registryPromise ??= !redisUrl
      ? Promise.resolve('no Redis URL (--redis or $SCAN_BACKENDS_REDIS)')
      : hooks.registry
        ? Promise.resolve(hooks.registry(ttlSeconds))
        : RedisRegistry.connect({ url: redisUrl, prefix: options.redisPrefix, ttlSeconds }).catch(
            (error: Error) => `Redis unavailable at ${redactUrl(redisUrl)}: ${error.message}`,
          ));
  let redisWarned = false;
  const redisProblem = (message: string) => {
    if (!redisWarned && redisUrl) warnings.push(message);
    redisWarned = true;
  };
  if (options.requireRedis) {
    if (!redisUrl) throw new SourceUnavailableError('requireRedis: no Redis URL (redisUrl or $SCAN_BACKENDS_REDIS)');
    const r = await registry();
    if (typeof r === 'string') throw new SourceUnavailableError(r);
  }

  let coordinators: Promise<ProcessFindings> | undefined;
  const findCoordinators = () =>
    (coordinators ??= processCandidates(options.trustAllUsers === true).catch((error: Error): ProcessFindings => ({
      candidates: [],
      dropped: [],
      skipped: [],
      message: `cannot list processes: ${error.message}`,
    })));
  const witnesses = new Witnesses({
    coordinators: findCoordinators,
    registry: async () => {
      const r = await registry();
      if (typeof r === 'string') {
        redisProblem(r);
        return [];
      }
      return (await r.entries()).entries;
    },
    registryTtlSeconds: ttlSeconds,
    lookup,
  });

  const loadConfig = hooks.loadConfig ?? (() => configCandidates(options.configPath, options.strict));
  const config = order.includes('config') ? loadConfig() : Promise.resolve(null);
  config.catch(() => {}); // reported by the config source
  let rpcVersion = options.rpcVersion;
  if (rpcVersion === undefined) rpcVersion = (await config.catch(() => null))?.rpcVersion;

  const ctx: VerifyContext = {
    timeoutMs: options.timeoutMs,
    probeTimeoutMs: options.probeTimeoutMs,
    // null, not undefined: the probe must not fall back to $SCAN_BACKENDS_RPC_VERSION.
    rpcVersion: hooks.keepEveryProtocol ? null : (rpcVersion ?? null),
    engine: options.engine,
    signal: options.signal,
    verify,
    lookup,
    allowPublic: options.allowPublic === true,
    allowLinkLocal: options.allowLinkLocal === true,
    acceptSilent: options.acceptSilent === true,
    witnesses,
  };

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
          const found = await findCoordinators();
          report.found = found.candidates.length + found.dropped.length;
          report.message = found.message;
          if (found.skipped.length > 0) report.warnings = found.skipped;
          ({ kept, dropped } = await verifyCandidates(found.candidates, ctx));
          dropped.unshift(...found.dropped);
        } else if (name === 'config') {
          const found = await config;
          if (!found) {
            report.message = `no config file (looked for ${options.configSearch.join(', ')})`;
          } else {
            report.found = found.candidates.length + found.dropped.length;
            report.message = found.file;
            if (found.warnings.length > 0) report.warnings = found.warnings;
            ({ kept, dropped } = await verifyCandidates(found.candidates, ctx));
            dropped.unshift(...found.dropped);
          }
        } else if (name === 'scan') {
          const found = await scanSource({ ...ctx, subnet: options.subnet, ports: options.ports });
          report.found = found.found;
          report.scanned = found.scanned;
          report.message = found.message;
          ({ kept, dropped } = found);
        } else {
          const r = await registry();
          if (typeof r === 'string') {
            report.status = redisUrl ? 'error' : 'skipped';
            report.message = r;
            if (redisUrl) redisProblem(r);
            continue;
          }
          const found = await r.entries();
          report.found = found.entries.length + found.dropped.length;
          report.message = r.url;
          ({ kept, dropped } = await verifyCandidates(found.entries, ctx));
          // Entries that were checked and did not answer leave the registry.
          if (verify && hooks.pruneRegistry !== false) await r.remove(dropped);
          dropped.unshift(...found.dropped);
        }
        report.dropped = dropped;
        report.status = kept.length > 0 ? 'ok' : 'empty';
        add(kept);
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        if ((error as { code?: string }).code === 'SB_INVALID_TARGET') throw error; // --strict, --subnet
        report.status = 'error';
        report.message = (error as Error).message;
        if (name === 'redis') redisProblem(`Redis unavailable at ${redactUrl(redisUrl ?? '')}: ${report.message}`);
      }
    }

    let live = [...backends.values()];
    let compatibility: Resolution['compatibility'];
    if (rpcVersion !== undefined) {
      compatibility = { client: rpcVersion, rule: CLIENT_RULE };
    } else if (verify && !hooks.keepEveryProtocol) {
      const group = chooseCompatibleGroup(live.filter((b) => b.verified));
      for (const { backend, reason } of group.drop) {
        reports
          .find((r) => r.name === backend.sources[0])
          ?.dropped.push({ host: backend.host, port: backend.port, reason });
      }
      live = live.filter((b) => !group.drop.some((d) => d.backend === b));
      if (group.warning) warnings.push(group.warning);
      compatibility = { rule: GROUP_RULE };
      if (group.usableBy) compatibility.usableBy = group.usableBy;
    }
    if (redisUrl && live.some((b) => b.verified)) {
      const r = await registry();
      if (typeof r === 'string') redisProblem(r);
      else {
        try {
          await r.record(live.map((b) => ({ ...b, proven: b.evidence === 'hello' })));
        } catch (error) {
          warnings.push(`Redis unavailable at ${r.url}: could not record backends: ${(error as Error).message}`);
        }
      }
    }
    const verified = live.filter((b) => b.verified).length;
    if (verified > MAX_COORDINATOR_BACKENDS) {
      warnings.push(`${verified} live backends: llama.cpp's coordinator takes at most ${MAX_COORDINATOR_BACKENDS}`);
    }
    const resolution: Resolution = { backends: live, sources: reports, warnings };
    if (compatibility) resolution.compatibility = compatibility;
    return resolution;
  } finally {
    const r = await registryPromise;
    if (r && typeof r !== 'string') await r.close(); // a borrowed one stays open
  }
}

export type { Backend, Candidate, Dropped, Resolution, SourceName, SourceReport } from './types.js';
export { SOURCE_NAMES } from './types.js';
export { parseConfig } from './config-file.js';
export { parseRpcList, rpcLists } from './process.js';
