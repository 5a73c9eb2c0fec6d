// resolveBackends(): the priority chain. Each source names candidates; every candidate is
// verified before it is returned; the first source with a live backend wins (or, with
// `merge`, all are unioned). Verified backends are recorded in Redis when one is configured.
import { parseAddress } from '../common/addresses.js';
import { SourceUnavailableError } from '../common/errors.js';
import { formatHostPort } from '../common/host-port.js';
import {
  normalizeResolveOptions,
  redactUrl,
  type ResolveOptions,
  type ResolveSettings,
  type SourceName,
} from '../common/options.js';
import { heldByText } from '../redis/claims.js';
import { RedisRegistry } from '../redis/registry.js';
import { chooseCompatibleGroup, CLIENT_RULE, GROUP_RULE } from './compatibility.js';
import { configCandidates, type LoadedConfig } from './config-file.js';
import { heldKey } from './held.js';
import { dnsSdSource, type DnsSdFound } from './dns-sd-source.js';
import { scanSource } from './network-scan.js';
import { processCandidates, type ProcessFindings } from './process.js';
import type { Backend, Dropped, Resolution, SourceReport } from './types.js';
import { verifyCandidates, Witnesses, type HeldElsewhere, type VerifyContext } from './verify.js';

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
  /** Servers held by a client this host cannot see (another watcher's coordinator's claims). */
  heldElsewhere?: HeldElsewhere;
  /** What a continuous DNS-SD browse sees now (a watcher's), instead of a one-shot browse. */
  dnsSd?: () => DnsSdFound;
}

export async function resolveBackends(options: ResolveOptions = {}, hooks: ResolveHooks = {}): Promise<Resolution> {
  return new Resolve(normalizeResolveOptions(options), hooks).run();
}

/**
 * One server checked as a resolve checks a candidate (what `announce` asks before it
 * advertises): refused by the same guards; busy without a connection when a trusted
 * coordinator holds it (its accept queue stays that client's); else asked HELLO and closed.
 */
export async function checkBackend(
  host: string,
  port: number,
  options: ResolveOptions = {},
): Promise<{ backend: Backend } | { reason: string }> {
  return new Resolve(normalizeResolveOptions(options), {}).check(host, port);
}

/** What one source gave: the verified backends it keeps and the candidates it dropped. */
interface SourceYield {
  kept: Backend[];
  dropped: Dropped[];
}

/** One resolve: the sources in order, then compatibility, then the registry's record. */
class Resolve {
  readonly #options: ResolveSettings;
  readonly #hooks: ResolveHooks;
  readonly #warnings: string[] = [];
  readonly #reports: SourceReport[] = [];
  readonly #backends = new Map<string, Backend>();
  #config: Promise<LoadedConfig | null> = Promise.resolve(null);
  readonly #ctx: VerifyContext;
  #registry?: Promise<RedisRegistry | string>;
  #coordinators?: Promise<ProcessFindings>;
  #redisWarned = false;
  /** Servers watchers' coordinators claim in the Redis (heldKey → why), read before any probe. */
  readonly #claimed = new Map<string, string>();

  constructor(options: ResolveSettings, hooks: ResolveHooks) {
    this.#options = options;
    this.#hooks = hooks;
    const witnesses = new Witnesses({
      coordinators: () => this.#findCoordinators(),
      registry: async () => {
        const r = await this.#openRegistry();
        if (typeof r === 'string') {
          this.#redisProblem(r);
          return [];
        }
        return (await r.entries()).entries;
      },
      registryTtlSeconds: options.redisTtlSeconds,
      lookup: options.lookup,
      heldElsewhere: hooks.heldElsewhere ?? (() => this.#claimed),
    });
    this.#ctx = {
      timing: options.timing,
      timeoutMs: options.timeoutMs,
      minRttTimeoutMs: options.minRttTimeoutMs,
      probeTimeoutMs: options.probeTimeoutMs,
      rpcVersion: null, // set in run(), once the config file has said its version
      engine: options.engine,
      signal: options.signal,
      verify: options.verify,
      lookup: options.lookup,
      allowPublic: options.allowPublic,
      allowLinkLocal: options.allowLinkLocal,
      acceptSilent: options.acceptSilent,
      witnesses,
    };
  }

  async run(): Promise<Resolution> {
    const { requireRedis, redisUrl, signal } = this.#options;
    try {
      if (requireRedis) {
        if (!redisUrl)
          throw new SourceUnavailableError('requireRedis: no Redis URL (redisUrl or $SCAN_BACKENDS_REDIS)');
        const r = await this.#openRegistry();
        if (typeof r === 'string') throw new SourceUnavailableError(r);
      }
      if (this.#options.sources.includes('config')) {
        const { loadConfig } = this.#hooks;
        this.#config = loadConfig ? loadConfig() : configCandidates(this.#options.configPath, this.#options.strict);
        this.#config.catch(() => {}); // reported by the config source
      }
      if (redisUrl && this.#options.verify && !this.#hooks.heldElsewhere) await this.#readClaims();
      const rpcVersion = this.#options.rpcVersion ?? (await this.#config.catch(() => null))?.rpcVersion;
      // null, not undefined: the probe must not fall back to $SCAN_BACKENDS_RPC_VERSION.
      this.#ctx.rpcVersion = this.#hooks.keepEveryProtocol ? null : (rpcVersion ?? null);
      for (const name of this.#options.sources) {
        signal?.throwIfAborted();
        await this.#runSource(name);
      }
      const resolution = this.#judgeCompatibility(rpcVersion);
      await this.#record(resolution.backends);
      const verified = resolution.backends.filter((b) => b.verified).length;
      if (verified > MAX_COORDINATOR_BACKENDS) {
        this.#warnings.push(
          `${verified} live backends: llama.cpp's coordinator takes at most ${MAX_COORDINATOR_BACKENDS}`,
        );
      }
      return resolution;
    } finally {
      const r = await this.#registry;
      if (r && typeof r !== 'string') await r.close(); // a borrowed one stays open
    }
  }

  async check(host: string, port: number): Promise<{ backend: Backend } | { reason: string }> {
    this.#ctx.rpcVersion = this.#options.rpcVersion ?? null;
    try {
      const { kept, dropped } = await verifyCandidates([{ host, port, source: 'dns-sd' }], this.#ctx);
      return kept[0] ? { backend: kept[0] } : { reason: dropped[0]?.reason ?? 'not checked' };
    } finally {
      const r = await this.#registry;
      if (r && typeof r !== 'string') await r.close();
    }
  }

  /** One source: its report, its verified backends merged into the result. */
  async #runSource(name: SourceName): Promise<void> {
    const report: SourceReport = { name, status: 'empty', found: 0, dropped: [] };
    this.#reports.push(report);
    if (!this.#options.merge && this.#backends.size > 0) {
      report.status = 'skipped';
      report.message = 'an earlier source found live backends (--merge asks every source)';
      return;
    }
    try {
      const found = await this.#fromSource(name, report);
      if (!found) return;
      report.dropped = found.dropped;
      report.status = found.kept.length > 0 ? 'ok' : 'empty';
      this.#add(found.kept);
    } catch (error) {
      if (this.#options.signal?.aborted) throw this.#options.signal.reason;
      if ((error as { code?: string }).code === 'SB_INVALID_TARGET') throw error; // --strict, --subnet
      report.status = 'error';
      report.message = (error as Error).message;
      if (name === 'redis') {
        this.#redisProblem(`Redis unavailable at ${redactUrl(this.#options.redisUrl ?? '')}: ${report.message}`);
      }
    }
  }

  /** Asks one source for candidates and verifies them; undefined when it could not be asked. */
  async #fromSource(name: SourceName, report: SourceReport): Promise<SourceYield | undefined> {
    const ctx = this.#ctx;
    if (name === 'process') {
      const found = await this.#findCoordinators();
      report.found = found.candidates.length + found.dropped.length;
      report.message = found.message;
      if (found.skipped.length > 0) report.warnings = found.skipped;
      return withDropped(await verifyCandidates(found.candidates, ctx), found.dropped);
    }
    if (name === 'config') {
      const found = await this.#config;
      if (!found) {
        report.message = `no config file (looked for ${this.#options.configSearch.join(', ')})`;
        return { kept: [], dropped: [] };
      }
      report.found = found.candidates.length + found.dropped.length;
      report.message = found.file;
      if (found.warnings.length > 0) report.warnings = found.warnings;
      return withDropped(await verifyCandidates(found.candidates, ctx), found.dropped);
    }
    if (name === 'dns-sd') {
      const { dnsSdTypes, dnsSdWaitMs, signal } = this.#options;
      const found = await dnsSdSource(ctx, this.#hooks.dnsSd ?? { types: dnsSdTypes, waitMs: dnsSdWaitMs, signal });
      report.found = found.found;
      report.message = found.message;
      return found;
    }
    if (name === 'scan') {
      const found = await scanSource({ ...ctx, subnet: this.#options.subnet, ports: this.#options.ports });
      report.found = found.found;
      report.scanned = found.scanned;
      if (found.timing) report.timing = found.timing;
      report.message = found.message;
      return found;
    }
    return this.#fromRegistry(report);
  }

  async #fromRegistry(report: SourceReport): Promise<SourceYield | undefined> {
    const { redisUrl, verify } = this.#options;
    const r = await this.#openRegistry();
    if (typeof r === 'string') {
      report.status = redisUrl ? 'error' : 'skipped';
      report.message = r;
      if (redisUrl) this.#redisProblem(r);
      return undefined;
    }
    const found = await r.entries();
    report.found = found.entries.length + found.dropped.length;
    report.message = r.url;
    const checked = await verifyCandidates(found.entries, this.#ctx);
    // Entries that were checked and did not answer leave the registry.
    if (verify && this.#hooks.pruneRegistry !== false) await r.remove(checked.dropped);
    return withDropped(checked, found.dropped);
  }

  /** Merges a source's backends into the result; a backend found again gains the source. */
  #add(kept: Backend[]): void {
    for (const b of kept) {
      const key = formatHostPort(b);
      const known = this.#backends.get(key);
      if (!known) {
        // Keys in the documented order: host, port, sources, verified, then the details.
        const { host, port, sources, verified, ...details } = b;
        this.#backends.set(key, { host, port, sources: [...sources], verified, ...details });
        continue;
      }
      for (const s of b.sources) if (!known.sources.includes(s)) known.sources.push(s);
    }
  }

  /** The result: against the client version, or the group one client can use (the rest dropped). */
  #judgeCompatibility(rpcVersion: string | undefined): Resolution {
    let live = [...this.#backends.values()];
    const resolution: Resolution = { backends: live, sources: this.#reports, warnings: this.#warnings };
    if (rpcVersion !== undefined) {
      resolution.compatibility = { client: rpcVersion, rule: CLIENT_RULE };
    } else if (this.#options.verify && !this.#hooks.keepEveryProtocol) {
      const group = chooseCompatibleGroup(live.filter((b) => b.verified));
      for (const { backend, reason } of group.drop) {
        this.#reports
          .find((r) => r.name === backend.sources[0])
          ?.dropped.push({ host: backend.host, port: backend.port, reason });
      }
      live = live.filter((b) => !group.drop.some((d) => d.backend === b));
      if (group.warning) this.#warnings.push(group.warning);
      resolution.backends = live;
      resolution.compatibility = { rule: GROUP_RULE };
      if (group.usableBy) resolution.compatibility.usableBy = group.usableBy;
    }
    return resolution;
  }

  /** Records the verified backends in the registry, when there is one. */
  async #record(live: Backend[]): Promise<void> {
    if (!this.#options.redisUrl || !live.some((b) => b.verified)) return;
    const r = await this.#openRegistry();
    if (typeof r === 'string') {
      this.#redisProblem(r);
      return;
    }
    try {
      await r.record(live.map((b) => ({ ...b, proven: b.evidence === 'hello' })));
    } catch (error) {
      this.#warnings.push(`Redis unavailable at ${r.url}: could not record backends: ${(error as Error).message}`);
    }
  }

  /**
   * Redis is connected to only when something needs it (the redis source, a witness, a write),
   * once, with a deadline; a source that does not need it never waits for it.
   */
  #openRegistry(): Promise<RedisRegistry | string> {
    const { redisUrl, redisPrefix, redisTtlSeconds: ttlSeconds } = this.#options;
    return (this.#registry ??= !redisUrl
      ? Promise.resolve('no Redis URL (--redis or $SCAN_BACKENDS_REDIS)')
      : this.#hooks.registry
        ? Promise.resolve(this.#hooks.registry(ttlSeconds))
        : RedisRegistry.connect({ url: redisUrl, prefix: redisPrefix, ttlSeconds }).catch(
            (error: Error) => `Redis unavailable at ${redactUrl(redisUrl)}: ${error.message}`,
          ));
  }

  /** A Redis problem is said once per resolve, and only when a Redis was asked for. */
  /** The coordinators' claims in the Redis: servers held by a client elsewhere, never probed. */
  async #readClaims(): Promise<void> {
    const r = await this.#openRegistry();
    if (typeof r === 'string') return this.#redisProblem(r);
    for (const { server, holder } of await r.claims().catch(() => [])) {
      const address = parseAddress(server.host);
      if (address) this.#claimed.set(heldKey(address.family, address.value, server.port), heldByText(holder));
    }
  }

  #redisProblem(message: string): void {
    if (!this.#redisWarned && this.#options.redisUrl) this.#warnings.push(message);
    this.#redisWarned = true;
  }

  #findCoordinators(): Promise<ProcessFindings> {
    return (this.#coordinators ??= processCandidates(this.#options.trustAllUsers).catch(
      (error: Error): ProcessFindings => ({
        candidates: [],
        dropped: [],
        skipped: [],
        message: `cannot list processes: ${error.message}`,
      }),
    ));
  }
}

/** A source's verified result, with the candidates it refused before verification first. */
function withDropped(checked: SourceYield, refused: Dropped[]): SourceYield {
  return { kept: checked.kept, dropped: [...refused, ...checked.dropped] };
}

export type { Backend, Candidate, Dropped, Resolution, SourceName, SourceReport } from './types.js';
export { SOURCE_NAMES } from './types.js';
export { parseConfig } from './config-file.js';
export { parseRpcList, rpcLists } from './process.js';
export { CLOSED_REASON } from './verify.js';
