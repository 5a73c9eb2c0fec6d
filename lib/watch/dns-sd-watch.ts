// The watcher's continuous DNS-SD browse (when its sources name dns-sd): one browser for the
// watcher's life, read by each resolve instead of a one-shot wait, and a change in what it
// sees (an announcement, a goodbye, a TTL's end) asks for a resolve soon, never more often
// than once a second, so a flood of answers cannot turn into a flood of connections.
import { browsedTypes, DnsSdBrowser } from '../dns-sd/browser.js';
import type { DnsSdFound } from '../resolver/for-watcher.js';
import type { WatchSettings } from '../common/options.js';
import type { WatchLogFn } from './types.js';

/** The least time between two resolves a DNS-SD change asks for. */
export const DNS_SD_RESOLVE_GAP_MS = 1000;

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
