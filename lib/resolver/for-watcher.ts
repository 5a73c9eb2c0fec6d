// The resolver as the watcher uses it: its one door into lib/resolver/. "Resolve with these
// hooks" (resolveBackends, the watcher reading the config file itself), and "verify these"
// (WatchVerifier: the VerifyContext and the witnesses built here, from the watcher's
// settings); the rest is what the watcher needs to follow what the resolver found (where a
// backend is, who names it, which ones one client can use).
import type { Address } from '../common/addresses.js';
import { formatHostPort } from '../common/host-port.js';
import type { WatchSettings } from '../common/options.js';
import { ScanJob, type ScanResult } from '../scan/job.js';
import type { Endpoint } from '../scan/targets/table.js';
import { configCandidates, type LoadedConfig } from './config-file.js';
import { establishedRemotes, heldKey } from './held.js';
import { resolveBackends, type ResolveHooks, type ResolveOptions } from './index.js';
import { processCandidates, type ProcessFindings } from './process.js';
import type { Backend, Candidate, Dropped, Resolution } from './types.js';
import {
  addressOf,
  judge,
  namedServerTiming,
  verifyCandidates,
  Witnesses,
  type HeldElsewhere,
  type VerifyContext,
} from './verify.js';

export { applyCompatibility } from './compatibility.js';
export type { DnsSdFound } from './dns-sd-source.js';
export { heldServers } from './held.js';
export type { HeldElsewhere, LoadedConfig, ResolveHooks };

/** One resolve through the chain, with the watcher's hooks. */
export function resolveWithHooks(options: ResolveOptions, hooks: ResolveHooks): Promise<Resolution> {
  return resolveBackends(options, hooks);
}

/** The config file as the watcher reads it: never strict (it keeps the last good one itself). */
export function readConfigFile(configPath: string | undefined): Promise<LoadedConfig | null> {
  return configCandidates(configPath, false);
}

/** The backends running coordinators of trusted users name in --rpc (a watcher's scope). */
export async function namedByCoordinators(trustAllUsers: boolean): Promise<Candidate[]> {
  return (await processCandidates(trustAllUsers)).candidates;
}

/** Where a backend is: its address, and the kernel's key for it (held servers); or why not. */
export async function locate(
  host: string,
  port: number,
  lookup: WatchSettings['lookup'],
): Promise<{ address: Address; heldKey: string } | string> {
  const address = await addressOf(host, lookup);
  if (typeof address === 'string') return address;
  return { address, heldKey: heldKey(address.family, address.value, port) };
}

/** What verification reads of the watcher's settings. */
export type VerifySettings = Pick<
  WatchSettings,
  | 'timing'
  | 'timeoutMs'
  | 'minRttTimeoutMs'
  | 'probeTimeoutMs'
  | 'engine'
  | 'lookup'
  | 'allowPublic'
  | 'allowLinkLocal'
  | 'acceptSilent'
  | 'trustAllUsers'
>;

/** A witness's word, or a check's verdict, on one followed backend. */
export type Verdict = { backend: Omit<Backend, 'sources'> } | { reason: string };

/**
 * "Verify these", for one step of the watcher: candidates another watcher reported, or the
 * followed backends a health round connects to. Witnesses are loaded once per step, on
 * demand: the coordinators of trusted users, never the registry (it vouches in resolves).
 * No client version, not even the environment's: a server of another protocol is alive all
 * the same (the watcher's usable set leaves it out), as its resolves keep every protocol.
 */
export class WatchVerifier {
  readonly #ctx: VerifyContext;

  constructor(settings: VerifySettings, signal: AbortSignal, heldElsewhere?: HeldElsewhere) {
    let coordinators: Promise<ProcessFindings> | undefined;
    const witnesses = new Witnesses({
      coordinators: () => (coordinators ??= processCandidates(settings.trustAllUsers)),
      registry: async () => [],
      registryTtlSeconds: 0, // no registry, so no entry to age
      lookup: settings.lookup,
      heldElsewhere,
    });
    this.#ctx = {
      timing: settings.timing,
      timeoutMs: settings.timeoutMs,
      minRttTimeoutMs: settings.minRttTimeoutMs,
      probeTimeoutMs: settings.probeTimeoutMs,
      rpcVersion: null,
      engine: settings.engine,
      signal,
      verify: true,
      lookup: settings.lookup,
      allowPublic: settings.allowPublic,
      allowLinkLocal: settings.allowLinkLocal,
      acceptSilent: settings.acceptSilent,
      witnesses,
    };
  }

  /** Candidates, verified as the resolver verifies any: guards, held servers, HELLO, witnesses. */
  verify(candidates: readonly Candidate[]): Promise<{ kept: Backend[]; dropped: Dropped[] }> {
    return verifyCandidates(candidates, this.#ctx);
  }

  /**
   * The servers among `keys` a trusted coordinator holds, or held elsewhere → why that is
   * known. Listing processes costs a read of every /proc entry; one read of /proc/net/tcp
   * first says whether anything here holds a connection to any of them at all.
   */
  async heldAmong(keys: Iterable<string>): Promise<Map<string, string>> {
    const established = await establishedRemotes();
    const anyHeld = [...keys].some((key) => established.has(key));
    if (!anyHeld) return new Map(this.#ctx.witnesses.heldElsewhere());
    return this.#ctx.witnesses.held().catch(() => new Map(this.#ctx.witnesses.heldElsewhere()));
  }

  /** Who vouches that the server at `key` is alive and in use, and why; or undefined. */
  async vouch(key: string): Promise<string | undefined> {
    return (await this.#ctx.witnesses.vouch(key))?.why;
  }

  /**
   * Connects to each endpoint once, asks HELLO, and judges each answer as resolve does (a
   * silent or filtered port asks the witnesses); in the order given, undefined for an
   * endpoint the scan returned nothing for.
   */
  async recheck(
    targets: readonly { endpoint: Endpoint; heldKey: string }[],
  ): Promise<({ verdict: Verdict; rttMs?: number } | undefined)[]> {
    const ctx = this.#ctx;
    const job = new ScanJob(
      { endpoints: targets.map((t) => t.endpoint) },
      {
        rpcVersion: null,
        ...namedServerTiming(ctx),
        probeTimeoutMs: ctx.probeTimeoutMs,
        engine: ctx.engine,
        probe: ['ggml-rpc'],
        signal: ctx.signal,
      },
    );
    const results = new Map<string, ScanResult>();
    for await (const r of job) results.set(formatHostPort(r), r);
    const verdicts: ({ verdict: Verdict; rttMs?: number } | undefined)[] = [];
    for (const { endpoint, heldKey: key } of targets) {
      const result = results.get(formatHostPort(endpoint));
      if (!result) {
        verdicts.push(undefined);
        continue;
      }
      const needsWitness = result.state === 'filtered' || (result.state === 'open' && result.guess === true);
      const vouch = needsWitness ? await ctx.witnesses.vouch(key) : undefined;
      verdicts.push({ verdict: judge(result, ctx, vouch), rttMs: result.rttMs });
    }
    return verdicts;
  }
}
