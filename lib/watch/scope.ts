// A watcher's scope: where its own sources look (the names its config file and coordinators
// give, the subnets and ports it scans, anything when redis is one of its sources). What
// another watcher reports is followed only within it. Known after the first resolve, renewed
// after each.
import { parseAddress, type Address } from '../common/addresses.js';
import { formatHostPort } from '../common/host-port.js';
import type { WatchSettings } from '../common/options.js';
import { namedByCoordinators, type LoadedConfig } from '../resolver/for-watcher.js';
import type { SourceName } from '../resolver/types.js';
import { localSubnetTargets } from '../scan/targets/local-subnets.js';
import { splitList, targetScope } from '../scan/targets/grammar.js';
import { isUnspecified, touchesLinkLocal } from '../scan/targets/guards.js';

/** Whether a scan covers an address and port. */
export type Covers = (address: Pick<Address, 'family' | 'value'>, port: number) => boolean;

/** The subnets the scan source covers, one lease each; undefined when it does not scan. */
export function scanSubnets(settings: Pick<WatchSettings, 'sources' | 'subnet'>): string[] | undefined {
  if (!settings.sources.includes('scan')) return undefined;
  try {
    return settings.subnet === undefined ? localSubnetTargets().cidrs : splitList(settings.subnet, 'subnet');
  } catch {
    return undefined; // the resolve reports a bad subnet list
  }
}

export class WatchScope {
  readonly #settings: WatchSettings;
  #named?: Map<string, SourceName>;
  #scan?: Covers;
  #redis = false;

  constructor(settings: WatchSettings) {
    this.#settings = settings;
  }

  /** Whether the first resolve has set it. */
  get known(): boolean {
    return this.#named !== undefined;
  }

  /** What the last resolve's scan source covers (undefined: it does not scan). */
  get scan(): Covers | undefined {
    return this.#scan;
  }

  /** Which of this watcher's sources covers host:port, or why none does. */
  of(host: string, port: number): SourceName | { why: string } {
    const address = parseAddress(host);
    const point = address && { family: address.family, first: address.value, last: address.value };
    if (address && isUnspecified(address)) return { why: 'an unspecified address (it reaches this host)' };
    if (point && !this.#settings.allowLinkLocal && touchesLinkLocal(point)) {
      return { why: 'a link-local or cloud-metadata address' };
    }
    if (!this.#named) return { why: 'no resolve has finished yet' };
    const named = this.#named.get(formatHostPort({ host, port }));
    if (named) return named;
    if (address && this.#scan?.(address, port)) return 'scan';
    if (this.#redis) return 'redis';
    return {
      why: 'no config line or coordinator names it, no subnet it scans holds it, and redis is not one of its sources',
    };
  }

  /** After a resolve: what its sources cover now (reports are judged against it until the next). */
  async update(config: LoadedConfig | null | undefined): Promise<void> {
    const settings = this.#settings;
    const sources = settings.sources;
    const named = new Map<string, SourceName>();
    if (sources.includes('process')) {
      const found = await namedByCoordinators(settings.trustAllUsers).catch(() => undefined);
      for (const c of found ?? []) named.set(formatHostPort(c), 'process');
    }
    if (sources.includes('config')) {
      for (const c of config?.candidates ?? []) named.set(formatHostPort(c), 'config');
    }
    const subnets = scanSubnets(settings);
    const scan = subnets
      ? await targetScope(subnets, settings.ports, settings.lookup).catch(() => undefined)
      : undefined;
    this.#named = named;
    this.#redis = sources.includes('redis');
    this.#scan = scan;
  }
}
