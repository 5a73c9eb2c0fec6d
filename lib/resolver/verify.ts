// Verification: a candidate is a live backend only when it proves it — it answers HELLO as a
// ggml-rpc server a coordinator can use — or when it is silent (or its accept queue is full)
// and a witness vouches that it is a ggml-rpc server held by a client: a running coordinator
// of a trusted user names it or holds a connection to it, or the registry saw it answer HELLO
// within its TTL. A port that is silent with no witness is only a guess, dropped with that
// reason unless `acceptSilent` keeps it, marked unverified.
import { parseAddress, type Address } from '../common/addresses.js';
import { formatHostPort } from '../common/host-port.js';
import { silentReason } from '../probes/verdict.js';
import type { Timing } from '../common/options.js';
import { ScanJob, type ScanOptions, type ScanResult } from '../scan/job.js';
import type { Endpoint } from '../scan/targets/table.js';
import {
  isNonPublicRange,
  isUnspecified,
  LINK_LOCAL_REFUSAL,
  touchesLinkLocal,
  UNSPECIFIED_REFUSAL,
} from '../scan/targets/guards.js';
import { LARGE_JOB_PAIRS, type LookupFn } from '../scan/targets/grammar.js';
import { heldKey, heldServers } from './held.js';
import type { ProcessFindings } from './process.js';
import type { RegistryEntry } from '../redis/registry.js';
import type { Backend, Candidate, Dropped, SourceName } from './types.js';

export type VerifyOptions = Pick<
  ScanOptions,
  'timing' | 'timeoutMs' | 'minRttTimeoutMs' | 'probeTimeoutMs' | 'rpcVersion' | 'engine' | 'signal'
>;

export interface VerifyContext extends VerifyOptions {
  timing: Timing;
  timeoutMs: number;
  minRttTimeoutMs: number;
  probeTimeoutMs: number;
  verify: boolean;
  lookup: LookupFn;
  allowPublic: boolean;
  allowLinkLocal: boolean;
  acceptSilent: boolean;
  witnesses: Witnesses;
}

/**
 * The timing a check of named servers runs with: fixed, at the ceiling. Adaptive timing suits
 * discovery, where a host that does not answer within a few round trips of the others is not
 * there; a server the user named (a config line, a coordinator's --rpc, a registration) may be
 * the one far one (VPN, Wi-Fi) among fast ones, and must get the whole wait.
 */
export function namedServerTiming(
  ctx: Pick<VerifyContext, 'timeoutMs'>,
): Pick<ScanOptions, 'timing' | 'timeoutMs' | 'minRttTimeoutMs'> {
  return { timing: 'fixed', timeoutMs: ctx.timeoutMs, minRttTimeoutMs: ctx.timeoutMs };
}

export async function addressOf(host: string, lookup: LookupFn): Promise<Address | string> {
  const literal = parseAddress(host);
  if (literal) return literal;
  try {
    return (await lookup(host))[0] ?? 'name resolves to no address';
  } catch (error) {
    return `name does not resolve (${(error as { code?: string }).code ?? 'lookup failed'})`;
  }
}

/**
 * Servers held by a client this host cannot see (heldKey → why): another watcher's coordinator
 * claims them in the shared Redis. Kept busy, never connected to.
 */
export type HeldElsewhere = () => ReadonlyMap<string, string>;

/** A witness's word for a silent port: which kind of witness, and what it saw. */
export interface Vouch {
  evidence: 'coordinator' | 'registry';
  why: string;
}

/**
 * What vouches for a silent port, each loaded once and only when a port needs it: the
 * coordinators of trusted users (their --rpc lists, their open connections) and the registry.
 */
export class Witnesses {
  readonly #coordinators: () => Promise<ProcessFindings>;
  readonly #registry: () => Promise<RegistryEntry[]>;
  readonly #ttlMs: number;
  readonly #lookup: LookupFn;
  readonly #heldElsewhere: HeldElsewhere;
  #named?: Promise<Map<string, Vouch>>;
  #proven?: Promise<Map<string, Vouch>>;

  constructor(options: {
    coordinators: () => Promise<ProcessFindings>;
    registry: () => Promise<RegistryEntry[]>;
    registryTtlSeconds: number;
    lookup: LookupFn;
    heldElsewhere?: HeldElsewhere;
  }) {
    this.#coordinators = options.coordinators;
    this.#registry = options.registry;
    this.#ttlMs = options.registryTtlSeconds * 1000;
    this.#lookup = options.lookup;
    this.#heldElsewhere = options.heldElsewhere ?? (() => new Map());
  }

  async #keyOf(host: string, port: number): Promise<string | undefined> {
    const address = await addressOf(host, this.#lookup);
    return typeof address === 'string' ? undefined : heldKey(address.family, address.value, port);
  }

  /**
   * Servers a trusted coordinator holds an established connection to, and those held
   * elsewhere (heldElsewhere) → why that is known.
   */
  async held(): Promise<Map<string, string>> {
    const found = await this.#coordinators();
    const pids = [...new Set(found.candidates.map((c) => c.coordinator.pid))];
    const names = new Map(found.candidates.map((c) => [c.coordinator.pid, c.coordinator.name]));
    const held = await heldServers(pids);
    return new Map([
      ...this.#heldElsewhere(),
      ...[...held].map(([key, pid]): [string, string] => [
        key,
        `pid ${pid} (${names.get(pid) ?? '?'}) holds a connection to it`,
      ]),
    ]);
  }

  /** The servers held elsewhere alone (no /proc read). */
  heldElsewhere(): ReadonlyMap<string, string> {
    return this.#heldElsewhere();
  }

  /** Who vouches that a silent port at `key` is a ggml-rpc server, and why; or undefined. */
  async vouch(key: string): Promise<Vouch | undefined> {
    this.#named ??= this.#coordinators().then(async (found) => {
      const named = new Map<string, Vouch>();
      for (const c of found.candidates) {
        const k = await this.#keyOf(c.host, c.port);
        const why = `pid ${c.coordinator.pid} (${c.coordinator.name}) names it in --rpc`;
        if (k !== undefined) named.set(k, { evidence: 'coordinator', why });
      }
      return named;
    });
    const named = (await this.#named).get(key);
    if (named) return named;
    this.#proven ??= this.#registry().then(async (entries) => {
      const proven = new Map<string, Vouch>();
      const now = Date.now();
      for (const e of entries) {
        if (e.lastProven === undefined || now - e.lastProven > this.#ttlMs) continue;
        const k = await this.#keyOf(e.host, e.port);
        const version = e.protocol ? ` ${e.protocol}` : '';
        const ago = Math.round((now - e.lastProven) / 1000);
        const why = `the registry saw it answer HELLO as ggml-rpc${version} ${ago} s ago`;
        if (k !== undefined) proven.set(k, { evidence: 'registry', why });
      }
      return proven;
    });
    return (await this.#proven).get(key);
  }
}

type Judged = { backend: Omit<Backend, 'sources'> } | { reason: string };

/** Why a refused connection is dropped: the server is gone (announce withdraws at once on it). */
export const CLOSED_REASON = 'closed (connection refused)';

/** Keeps or drops one scanned-and-probed result, saying why; `vouched` is a witness's word. */
export function judge(
  result: ScanResult,
  ctx: Pick<VerifyContext, 'timeoutMs' | 'probeTimeoutMs' | 'acceptSilent'>,
  vouched?: Vouch,
): Judged {
  const { timeoutMs } = ctx;
  const base = { host: result.host, port: result.port, verified: true, rttMs: result.rttMs };
  const busy = (what: string, vouch: Vouch): Judged => ({
    backend: {
      ...base,
      service: 'ggml-rpc',
      health: 'busy',
      evidence: vouch.evidence,
      reason: `busy: ${what} (${vouch.why})`,
    },
  });
  if (result.state === 'closed') return { reason: CLOSED_REASON };
  if (result.state === 'filtered') {
    if (!vouched) return { reason: `no answer within ${timeoutMs} ms` };
    // A held server's two-slot accept queue is full: the kernel drops further SYNs.
    return busy(`no answer to the connect within ${timeoutMs} ms, its accept queue is full`, vouched);
  }
  if (result.state !== 'open') return { reason: `${result.state} (${result.error ?? 'unknown error'})` };
  if (result.service === 'ggml-rpc' && result.guess) {
    if (vouched) return busy('it holds HELLO unanswered, as a ggml-rpc server serving another client does', vouched);
    const why = `${silentReason(ctx.probeTimeoutMs)}; no running coordinator names it and the registry has no recent HELLO from it`;
    if (!ctx.acceptSilent) return { reason: `${why} (--accept-silent keeps it, unverified)` };
    return { backend: { ...base, verified: false, service: 'ggml-rpc', health: 'busy', guess: true, reason: why } };
  }
  if (result.service !== 'ggml-rpc')
    return { reason: `not a ggml-rpc server: ${result.reason ?? 'no answer to HELLO'}` };
  if (result.health !== 'serving') return { reason: result.reason ?? `ggml-rpc ${result.health}` };
  const backend: Omit<Backend, 'sources'> = {
    ...base,
    service: result.service,
    health: result.health,
    evidence: 'hello',
    reason: result.reason ?? 'answered HELLO',
  };
  if (result.rpc) backend.rpc = result.rpc;
  return { backend };
}

/** A server a trusted coordinator holds: kept busy, never connected to. */
export function heldBackend(owner: { host: string; port: number; sources: SourceName[] }, why: string): Backend {
  return {
    ...owner,
    verified: true,
    service: 'ggml-rpc',
    health: 'busy',
    evidence: 'held',
    reason: `busy: ${why}; not connected to, so its queue stays free for that client`,
  };
}

/** Candidates once each, in order, with every source that named them. */
export function dedupe(candidates: readonly Candidate[]): { host: string; port: number; sources: SourceName[] }[] {
  const byKey = new Map<string, { host: string; port: number; sources: SourceName[] }>();
  for (const c of candidates) {
    const key = formatHostPort(c);
    const entry = byKey.get(key) ?? { host: c.host, port: c.port, sources: [] };
    if (!entry.sources.includes(c.source)) entry.sources.push(c.source);
    byKey.set(key, entry);
  }
  return [...byKey.values()];
}

/** Judges results of one scan against witnesses; silent and filtered ports ask them. */
export async function judgeAll(
  results: readonly { owner: { host: string; port: number; sources: SourceName[] }; key: string; result: ScanResult }[],
  ctx: VerifyContext,
): Promise<{ kept: Backend[]; dropped: Dropped[] }> {
  const kept: Backend[] = [];
  const dropped: Dropped[] = [];
  for (const { owner, key, result } of results) {
    const needsWitness = result.state === 'filtered' || (result.state === 'open' && result.guess === true);
    const vouched = needsWitness ? await ctx.witnesses.vouch(key) : undefined;
    const verdict = judge(result, ctx, vouched);
    if ('backend' in verdict)
      kept.push({ ...verdict.backend, host: owner.host, port: owner.port, sources: owner.sources });
    else dropped.push({ host: owner.host, port: owner.port, reason: verdict.reason });
  }
  return { kept, dropped };
}

/**
 * Verifies every candidate, all at once: names are resolved first (those that do not resolve
 * are dropped), public addresses are dropped unless allowed, servers a coordinator holds are
 * kept busy without a connection, and the rest are connected to and asked HELLO. With
 * `verify: false` every candidate that passes the guards is kept unverified.
 */
export async function verifyCandidates(
  candidates: readonly Candidate[],
  ctx: VerifyContext,
): Promise<{ kept: Backend[]; dropped: Dropped[] }> {
  const kept: Backend[] = [];
  const dropped: Dropped[] = [];
  const endpoints: Endpoint[] = [];
  const owners: { owner: { host: string; port: number; sources: SourceName[] }; key: string }[] = [];
  const unique = dedupe(candidates);
  for (const [i, c] of unique.entries()) {
    if (i >= LARGE_JOB_PAIRS) {
      dropped.push({ host: c.host, port: c.port, reason: `over ${LARGE_JOB_PAIRS} candidates; not checked` });
      continue;
    }
    const address = await addressOf(c.host, ctx.lookup);
    if (typeof address === 'string') {
      dropped.push({ host: c.host, port: c.port, reason: address });
      continue;
    }
    if (isUnspecified(address)) {
      dropped.push({ host: c.host, port: c.port, reason: UNSPECIFIED_REFUSAL });
      continue;
    }
    if (!ctx.allowPublic && !isNonPublicRange({ family: address.family, first: address.value, last: address.value })) {
      dropped.push({
        host: c.host,
        port: c.port,
        reason: 'a public address: never connected to unless allowed (--allow-public, allowPublic)',
      });
      continue;
    }
    if (
      !ctx.allowLinkLocal &&
      touchesLinkLocal({ family: address.family, first: address.value, last: address.value })
    ) {
      dropped.push({ host: c.host, port: c.port, reason: LINK_LOCAL_REFUSAL });
      continue;
    }
    endpoints.push({ host: c.host, family: address.family, port: c.port, value: address.value });
    owners.push({ owner: c, key: heldKey(address.family, address.value, c.port) });
  }
  if (!ctx.verify) {
    return { kept: owners.map(({ owner }) => ({ ...owner, verified: false })), dropped };
  }
  if (endpoints.length === 0) return { kept, dropped };
  const held = await ctx.witnesses.held();
  const toProbe: Endpoint[] = [];
  const probed: typeof owners = [];
  owners.forEach((o, i) => {
    const why = held.get(o.key);
    if (!why) {
      toProbe.push(endpoints[i] as Endpoint);
      probed.push(o);
      return;
    }
    kept.push(heldBackend(o.owner, why));
  });
  if (toProbe.length === 0) return { kept, dropped };
  const job = new ScanJob({ endpoints: toProbe }, { ...ctx, ...namedServerTiming(ctx), probe: ['ggml-rpc'] });
  const results = new Map<string, ScanResult>();
  for await (const r of job) results.set(formatHostPort(r), r);
  const judged = await judgeAll(
    probed.map((o, i) => ({
      ...o,
      result: results.get(formatHostPort({ host: (toProbe[i] as Endpoint).host, port: o.owner.port })) as ScanResult,
    })),
    ctx,
  );
  return { kept: [...kept, ...judged.kept], dropped: [...dropped, ...judged.dropped] };
}
