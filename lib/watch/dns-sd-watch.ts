// The watcher's continuous DNS-SD browse (when its sources name dns-sd): one browser for the
// watcher's life, read by each resolve instead of a one-shot wait, and a change in what it
// sees (an announcement, a goodbye, a TTL's end) asks for an early resolve: the first a second
// after the last resolve started, further ones in a row farther apart (dnsSdResolveGapMs), and
// never in place of a due health round, so one peer's packets cannot keep the watcher resolving.
import { browsedTypes, DnsSdBrowser } from '../dns-sd/browser.js';
import type { DnsSdFound } from '../resolver/for-watcher.js';
import type { WatchSettings } from '../common/options.js';
import type { WatchLogFn } from './types.js';

/** The least time from a resolve's start to the first early resolve a DNS-SD change asks for. */
export const DNS_SD_RESOLVE_GAP_MS = 1000;
/** The least gap once early resolves follow each other with no regular one between. */
export const DNS_SD_RESOLVE_GAP_AGAIN_MS = 5000;

/**
 * The least time from the last resolve's start to an early one: a new server is picked up in
 * about a second, but a peer that keeps changing its answers gets a resolve every 5 s at most,
 * and never more than half the watcher's time (twice the last resolve's duration).
 */
export function dnsSdResolveGapMs(earlyInARow: number, lastResolveMs: number): number {
  return Math.max(earlyInARow === 0 ? DNS_SD_RESOLVE_GAP_MS : DNS_SD_RESOLVE_GAP_AGAIN_MS, 2 * lastResolveMs);
}

/** Whether the loop resolves now: an early resolve waits for a health round that is due. */
export function resolvesNow(due: { requested: boolean; resolve: boolean; early: boolean; health: boolean }): boolean {
  if (due.requested) return true;
  return due.resolve && !(due.early && due.health);
}

export class DnsSdWatch {
  #browser?: DnsSdBrowser;
  #problem?: string;
  readonly #types: string[];

  private constructor(types: string[]) {
    this.#types = types;
  }

  /** Opens the browse; a failure (port 5353 refused) is logged and becomes the source's error. */
  static async open(settings: WatchSettings, onChange: () => void, log: WatchLogFn): Promise<DnsSdWatch> {
    const watch = new DnsSdWatch(browsedTypes(settings.dnsSdTypes));
    try {
      watch.#browser = await DnsSdBrowser.open({
        types: watch.#types,
        onChange,
        onRefused: (why, origin) => log('debug', 'dns-sd record refused', { why, from: origin.address }),
      });
      log('info', 'dns-sd browsing', { types: watch.#types });
    } catch (error) {
      watch.#problem = (error as Error).message;
      log('warn', 'dns-sd unavailable', { error: watch.#problem });
    }
    return watch;
  }

  /** What the browse sees now, for the resolver's dns-sd source. */
  found = (): DnsSdFound => {
    if (!this.#browser) throw new Error(this.#problem ?? 'dns-sd browser closed');
    return { candidates: this.#browser.candidates(), message: `browsing ${this.#types.join(', ')}` };
  };

  async close(): Promise<void> {
    await this.#browser?.close();
  }
}
