// A resolve round: with other watchers on the Redis, first the subnets this one scans (its
// scan leases); then the chain, with the watcher's own config reader and no registry pruning;
// then the resolution taken into the followed set (intake.ts). Its warnings are said once
// while they last, the registry values it could not use counted as ignored.
import { formatHostPort } from '../common/host-port.js';
import type { ResolveOptions, WatchSettings } from '../common/options.js';
import { peerText } from '../common/peer-text.js';
import { resolveWithHooks, type DnsSdFound, type HeldElsewhere, type LoadedConfig } from '../resolver/for-watcher.js';
import type { Resolution } from '../resolver/types.js';
import { targetScope } from '../scan/targets/grammar.js';
import type { Fleet } from '../redis/fleet.js';
import type { FollowedSet } from './followed.js';
import { takeResolution } from './intake.js';
import { scanSubnets, type Covers, type WatchScope } from './scope.js';
import type { CycleNotice, DroppedServer, WatchLogFn } from './types.js';

/** Dropped servers the snapshot lists: a scan of a /16 may drop thousands of ports. */
const MAX_DROPPED = 64;

export interface ResolveRoundContext {
  settings: WatchSettings;
  followed: FollowedSet;
  scope: WatchScope;
  fleet: () => Fleet | undefined;
  loadConfig: () => Promise<LoadedConfig | null>;
  /** Servers other watchers' coordinators claim: held, never connected to. */
  heldElsewhere: HeldElsewhere;
  /** The continuous DNS-SD browse's view, when the sources name dns-sd. */
  dnsSd: () => (() => DnsSdFound) | undefined;
  log: WatchLogFn;
  cycle: (notice: CycleNotice) => void;
}

export class ResolveRound {
  readonly #ctx: ResolveRoundContext;
  #lastResolveAt?: Date;
  #scanning?: string[];
  #leaseNote = '';
  #warned = new Set<string>();
  #dropped: DroppedServer[] = [];

  constructor(ctx: ResolveRoundContext) {
    this.#ctx = ctx;
  }

  /** When a resolve last returned. */
  get lastResolveAt(): Date | undefined {
    return this.#lastResolveAt;
  }

  /** What the last resolve named and the watcher does not follow, and why. */
  get dropped(): readonly DroppedServer[] {
    return this.#dropped;
  }

  /** The subnets this watcher scanned last (its leases, or all of them). */
  get scanning(): readonly string[] | undefined {
    return this.#scanning;
  }

  /** One round; `started` is its performance.now(). */
  async run(signal: AbortSignal, started: number): Promise<void> {
    const { settings, fleet } = this.#ctx;
    const options: ResolveOptions = { ...settings, rpcVersion: settings.rpcVersion ?? undefined, signal };
    const leased = await this.#leaseScans();
    if (leased) {
      if (leased.length > 0) options.subnet = leased;
      else options.sources = settings.sources.filter((s) => s !== 'scan');
    }
    if (options.sources?.length === 0) return; // every subnet is another watcher's, and nothing else to ask
    const live = fleet();
    const resolution = await resolveWithHooks(options, {
      loadConfig: this.#ctx.loadConfig,
      pruneRegistry: live === undefined,
      keepEveryProtocol: true,
      // The fleet's own connection: a resolve opens none of its own.
      registry: live && ((ttlSeconds) => live.registry(ttlSeconds)),
      heldElsewhere: this.#ctx.heldElsewhere,
      dnsSd: this.#ctx.dnsSd(),
    });
    this.#lastResolveAt = new Date();
    await takeResolution(this.#ctx.followed, resolution, await this.#scannedBy(leased));
    this.#keepDropped(resolution);
    this.#countIgnoredEntries(resolution);
    this.#sayWarnings(resolution);
    const scan = resolution.sources.find((r) => r.name === 'scan' && r.status !== 'skipped');
    const cycle: CycleNotice = { kind: 'resolve', elapsedMs: performance.now() - started };
    if (scan?.scanned !== undefined) cycle.scanned = scan.scanned;
    this.#ctx.cycle(cycle);
    this.#ctx.log('debug', 'resolve done', {
      elapsedMs: Math.round(performance.now() - started),
      backends: resolution.backends.length,
      ...(scan ? { scanned: [options.subnet ?? scanSubnets(settings) ?? []].flat(), timing: scan.timing } : {}),
    });
  }

  /** What this resolve's scan covered: a backend elsewhere is not missed by it. */
  async #scannedBy(leased: string[] | undefined): Promise<Covers | undefined> {
    if (leased === undefined) return this.#ctx.scope.scan;
    if (leased.length === 0) return undefined;
    const { ports, lookup } = this.#ctx.settings;
    return targetScope(leased, ports, lookup).catch(() => undefined);
  }

  /**
   * With other watchers on the Redis: the subnets this one scans this cycle (its leases), or
   * undefined to scan them all (no Redis, no scan source, or Redis down: on its own).
   */
  async #leaseScans(): Promise<string[] | undefined> {
    const subnets = scanSubnets(this.#ctx.settings);
    const fleet = this.#ctx.fleet();
    const log = this.#ctx.log;
    if (!fleet || !subnets || subnets.length === 0) return undefined;
    let note: string;
    let leased: string[] | undefined;
    try {
      const { mine, others } = await fleet.lease(subnets);
      leased = mine;
      note = JSON.stringify([mine, others]);
      if (note !== this.#leaseNote) log('info', 'scan leases', { scanning: mine, leasedByOthers: others });
    } catch (error) {
      note = 'all';
      if (note !== this.#leaseNote) {
        log('warn', 'scan leases unavailable; scanning every subnet', { error: (error as Error).message });
      }
    }
    this.#leaseNote = note;
    this.#scanning = leased ?? subnets;
    return leased;
  }

  /** The servers a source named and no backend followed is: the first MAX_DROPPED, once each. */
  #keepDropped(resolution: Resolution): void {
    const seen = new Set<string>();
    this.#dropped = [];
    for (const report of resolution.sources) {
      for (const d of report.dropped) {
        const key = formatHostPort(d);
        if (seen.has(key) || this.#ctx.followed.get(key)) continue;
        seen.add(key);
        if (this.#dropped.length === MAX_DROPPED) return;
        this.#dropped.push({
          host: peerText(d.host),
          port: d.port,
          source: report.name,
          reason: peerText(d.reason, 256),
        });
      }
    }
  }

  /** A resolve's warnings, each said once while it lasts (not once per cycle). */
  #sayWarnings(resolution: Resolution): void {
    const now = new Set([...resolution.warnings, ...resolution.sources.flatMap((s) => s.warnings ?? [])]);
    for (const warning of now) {
      // The fleet says Redis's state itself, once per loss.
      if (this.#ctx.fleet() && warning.startsWith('Redis unavailable')) continue;
      if (!this.#warned.has(warning)) this.#ctx.log('warn', 'resolve warning', { warning });
    }
    this.#warned = now;
  }

  /** Registry entries the resolve dropped unread or misshapen are Redis values ignored, counted once each. */
  #countIgnoredEntries(resolution: Resolution): void {
    const registry = resolution.sources.find((r) => r.name === 'redis');
    for (const d of registry?.dropped ?? [])
      if (d.port === 0) this.#ctx.fleet()?.ignore('registry', d.reason, `${d.host}\n${d.reason}`);
  }
}
