// Servers another watcher's coordinator claims in the shared Redis (redis/claims.ts). For this
// watcher each is held: judged busy without a connection (a ggml-rpc server serves one
// client, and a probe of ours would spend its accept queue), marked `claimedBy`, and left out
// of the usable set. This watcher's own claims are not others'.
import { formatAddress } from '../common/addresses.js';
import type { WatchSettings } from '../common/options.js';
import { peerText } from '../common/peer-text.js';
import { heldByText } from '../redis/claims.js';
import type { Fleet } from '../redis/fleet.js';
import { locate } from '../resolver/for-watcher.js';
import type { Followed } from './followed.js';
import type { WatchedBackend } from './types.js';

type ClaimedBy = NonNullable<WatchedBackend['claimedBy']>;

export class ClaimedByOthers {
  readonly #ownId: string;
  readonly #lookup: WatchSettings['lookup'];
  /** heldKey → who claims it, as of the last read that Redis answered. */
  #byKey = new Map<string, ClaimedBy>();

  constructor(ownId: string, lookup: WatchSettings['lookup']) {
    this.#ownId = ownId;
    this.#lookup = lookup;
  }

  /**
   * Reads the claims on the followed servers (by their keys), and with `list` every other
   * claim too (a resolve may find servers not followed yet). While Redis cannot be read the
   * last claims read stand: a coordinator keeps its servers while its claims cannot be renewed.
   */
  async refresh(fleet: Fleet | undefined, followed: Iterable<Followed>, list: boolean): Promise<void> {
    if (!fleet?.connected) return;
    const servers = [...followed].map((f) => ({ host: formatAddress(f.endpoint), port: f.endpoint.port }));
    const claims = await fleet.claims(servers, list).catch(() => undefined);
    if (!claims) return;
    const byKey = new Map<string, ClaimedBy>();
    for (const { server, holder } of claims) {
      if (holder.watcher === this.#ownId) continue;
      const where = await locate(server.host, server.port, this.#lookup);
      if (typeof where !== 'string')
        byKey.set(where.heldKey, { watcher: peerText(holder.watcher, 128), host: peerText(holder.host, 128) });
    }
    this.#byKey = byKey;
  }

  /** heldKey → why it is held (the WatchVerifier's and the resolve's heldElsewhere). */
  held(): Map<string, string> {
    return new Map([...this.#byKey].map(([key, by]) => [key, heldByText(by)]));
  }

  /** Marks each followed backend claimed by another watcher, and unmarks the rest. */
  mark(followed: Iterable<Followed>): void {
    for (const f of followed) {
      const by = this.#byKey.get(f.heldKey);
      if (by) f.view.claimedBy = { ...by };
      else delete f.view.claimedBy;
    }
  }
}
