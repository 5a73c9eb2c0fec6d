// resolveBackends(): the priority chain. Each source names candidates; every candidate is
// verified before it is returned; the first source with a live backend wins (or, with
// `merge`, all are unioned). Verified backends are recorded in Redis when one is configured.
import { InvalidOptionError, SourceUnavailableError } from '../common/errors.js';
import { formatHostPort } from '../common/host-port.js';
import { systemLookup } from '../common/addresses.js';
import {
  checkBooleanOption,
  checkChoiceOption,
  checkIntegerOption,
  checkSignalOption,
  checkStringOption,
  checkTargetListOption,
  ENGINES,
  rpcVersionOption,
  type ResolveOptions,
} from '../common/options.js';
import { chooseCompatibleGroup, CLIENT_RULE, GROUP_RULE } from './compatibility.js';
import { configCandidates, configSearchPath, type LoadedConfig } from './config-file.js';
import { scanSource } from './network-scan.js';
import { processCandidates, type ProcessFindings } from './process.js';
import { DEFAULT_REDIS_TTL_SECONDS, RedisRegistry, redactUrl } from './redis-cache.js';
import { SOURCE_NAMES, type Backend, type Dropped, type Resolution, type SourceReport } from './types.js';
import { verifyCandidates, Witnesses, type VerifyContext } from './verify.js';

/** llama.cpp's coordinator takes at most this many RPC servers (GGML_RPC_MAX_SERVERS). */
export const MAX_COORDINATOR_BACKENDS = 16;

// ResolveOptions lives with the watcher's options, which extend it (lib/common/options.ts).
export type { ResolveOptions } from '../common/options.js';

/** The resolver's own options, through the same checks as a scan's; the scan options reach the scan. */
export function checkResolveOptions(options: ResolveOptions): void {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options: must be an object');
  const sources = options.sources ?? SOURCE_NAMES;
  if (!Array.isArray(sources) || sources.length === 0) {
    throw new InvalidOptionError(`sources: must be a non-empty list of ${SOURCE_NAMES.join(', ')}`);
  }
  for (const s of sources) checkChoiceOption('sources', s, SOURCE_NAMES);
  for (const name of [
    'merge',
    'verify',
    'strict',
    'requireRedis',
    'allowPublic',
    'allowLinkLocal',
    'acceptSilent',
    'trustAllUsers',
  ] as const) {
    checkBooleanOption(name, options[name]);
  }
  for (const name of ['timeoutMs', 'probeTimeoutMs', 'redisTtlSeconds'] as const)
    checkIntegerOption(name, options[name]);
  for (const name of ['configPath', 'redisUrl', 'redisPrefix', 'rpcVersion'] as const)
    checkStringOption(name, options[name]);
  checkChoiceOption('engine', options.engine, ENGINES);
  checkSignalOption(options.signal);
  checkTargetListOption('subnet', options.subnet);
  if (options.redisUrl !== undefined && !/^rediss?:\/\//.test(options.redisUrl)) {
    throw new InvalidOptionError(
      `redisUrl: must be redis://host:port or rediss://…, got "${redactUrl(options.redisUrl)}"`,
    );
  }
}

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
}

export async function resolveBackends(options: ResolveOptions = {}, hooks: ResolveHooks = {}): Promise<Resolution> {
  checkResolveOptions(options);
  const order = options.sources ?? SOURCE_NAMES;
  const verify = options.verify ?? true;
  const lookup = options.lookup ?? systemLookup;
  const warnings: string[] = [];
  const reports: SourceReport[] = [];
  const backends = new Map<string, Backend>();
  const ttlSeconds = options.redisTtlSeconds ?? DEFAULT_REDIS_TTL_SECONDS;

  // Redis is connected to only when something needs it (the redis source, a witness, a write),
  // once, with a deadline; a source that does not need it never waits for it.
  const redisUrl = options.redisUrl ?? (process.env.SCAN_BACKENDS_REDIS || undefined);
  if (options.redisUrl === undefined && redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    throw new InvalidOptionError(`$SCAN_BACKENDS_REDIS: must be redis://host:port, got "${redactUrl(redisUrl)}"`);
  }
  let registryPromise: Promise<RedisRegistry | string> | undefined;
  const registry = (): Promise<RedisRegistry | string> =>
    (registryPromise ??= redisUrl
      ? RedisRegistry.connect({ url: redisUrl, prefix: options.redisPrefix, ttlSeconds }).catch(
          (error: Error) => `Redis unavailable at ${redactUrl(redisUrl)}: ${error.message}`,
        )
      : Promise.resolve('no Redis URL (--redis or $SCAN_BACKENDS_REDIS)'));
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

  const loadConfig = hooks.loadConfig ?? (() => configCandidates(options.configPath, options.strict ?? false));
  const config = order.includes('config') ? loadConfig() : Promise.resolve(null);
  config.catch(() => {}); // reported by the config source
  let rpcVersion = rpcVersionOption(options);
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
            report.message = `no config file (looked for ${configSearchPath(undefined).join(', ')})`;
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
    if (r && typeof r !== 'string') await r.close();
  }
}

export type { Backend, Candidate, Dropped, Resolution, SourceName, SourceReport } from './types.js';
export { SOURCE_NAMES } from './types.js';
export { parseConfig } from './config-file.js';
export { parseRpcList, rpcLists } from './process.js';
