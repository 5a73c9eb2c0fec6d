// The usable set: the followed backends that are up and verified, not claimed by another
// watcher's coordinator, and of the protocol one client can use, by resolve's rule (against
// the client version, or the group resolve would choose). Every backend is marked (`usable`, and `leftOut` with why); the set as an --rpc
// list says whether it changed.
import { formatHostPort } from '../common/host-port.js';
import { heldByText } from '../redis/claims.js';
import { applyCompatibility } from '../resolver/for-watcher.js';
import type { WatchedBackend } from './types.js';

export class UsableSet {
  #rpc = '';

  /** The set as an --rpc list ("" while none is usable). */
  get rpc(): string {
    return this.#rpc;
  }

  /**
   * Marks every backend of `sorted` (in address order) and returns the usable ones, in --rpc
   * order, when the set changed; undefined when it did not.
   */
  update(sorted: readonly WatchedBackend[], clientVersion: string | undefined): WatchedBackend[] | undefined {
    const up = sorted.filter((b) => b.state === 'up' && b.verified);
    // Another's servers are not this client's: they choose no protocol group either.
    const { keep: usable, drop } = applyCompatibility(
      up.filter((b) => !b.claimedBy),
      clientVersion,
    );
    const leftOut = new Map(drop.map((d) => [d.backend, d.reason]));
    for (const b of up) if (b.claimedBy) leftOut.set(b, heldByText(b.claimedBy));
    const kept = new Set(usable);
    for (const view of sorted) {
      view.usable = kept.has(view);
      const why = leftOut.get(view);
      if (why === undefined) delete view.leftOut;
      else view.leftOut = why;
    }
    const rpc = usable.map(formatHostPort).join(',');
    if (rpc === this.#rpc) return undefined;
    this.#rpc = rpc;
    return usable;
  }
}
