// The last N events, so a consumer that lost its connection can resume from the id it saw
// (the serve command's SSE replay).
import type { FeedEvent } from './types.js';

export class EventRing {
  readonly #capacity: number;
  readonly #events: FeedEvent[] = [];

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  push(event: FeedEvent): void {
    this.#events.push(event);
    if (this.#events.length > this.#capacity) this.#events.shift();
  }

  /**
   * Every event after `id`, oldest first; null when some of them are no longer held (the
   * consumer must start over from a snapshot). An id from the future gives nothing.
   */
  since(id: number): FeedEvent[] | null {
    const first = this.#events[0];
    if (first === undefined || id >= (this.#events.at(-1) as FeedEvent).id) return [];
    if (id < first.id - 1) return null;
    return this.#events.slice(id - first.id + 1);
  }

  get lastId(): number {
    return this.#events.at(-1)?.id ?? 0;
  }
}
