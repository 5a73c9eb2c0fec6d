// A watcher's events on their way out: numbered (the backends' and a supervised
// coordinator's from one counter), frozen (a consumer cannot change what the next one sees),
// kept in the ring for consumers that resume, handed to the watcher's listeners, and the
// backends' to every async iterator until the watcher closes.
import { EventRing } from './event-ring.js';
import type { Transition } from './tracker.js';
import type {
  CheckKind,
  CoordinatorDetails,
  CoordinatorEvent,
  CoordinatorEventType,
  FeedEvent,
  WatchedBackend,
  WatchEvent,
  WatchEventType,
} from './types.js';

type Pusher = { push: (e: WatchEvent | null) => void };

export class EventFeed {
  readonly #ring: EventRing;
  readonly #deliver: (event: FeedEvent) => void;
  readonly #iterators = new Set<Pusher>();
  #nextId = 1;
  #ended = false;

  /** `deliver` gets each event after the ring and before the iterators. */
  constructor(ringSize: number, deliver: (event: FeedEvent) => void) {
    this.#ring = new EventRing(ringSize);
    this.#deliver = deliver;
  }

  get lastId(): number {
    return this.#ring.lastId;
  }

  /** Events after `id` (oldest first), or null when some are gone from the ring. */
  since(id: number): FeedEvent[] | null {
    return this.#ring.since(id);
  }

  /** Numbers an event about `backend` (which learns its id) and sends it everywhere. */
  publish(
    type: WatchEventType,
    backend: WatchedBackend,
    cause: { check: CheckKind; saw: string },
    transition?: Transition,
  ): void {
    const event: WatchEvent = {
      schema: 1,
      id: this.#nextId++,
      time: new Date().toISOString(),
      type,
      backend,
      cause,
    };
    backend.lastEventId = event.id;
    if (transition?.type === 'changed') event.changes = transition.changes;
    const frozen = structuredClone(event);
    this.#send(frozen);
    for (const it of this.#iterators) it.push(frozen);
  }

  /** Numbers a supervised coordinator's event and sends it to the ring and the listeners; returns it. */
  coordinator(type: CoordinatorEventType, coordinator: CoordinatorDetails): CoordinatorEvent {
    const event: CoordinatorEvent = {
      schema: 1,
      id: this.#nextId++,
      time: new Date().toISOString(),
      type,
      coordinator,
    };
    const frozen = structuredClone(event);
    this.#send(frozen);
    return frozen;
  }

  #send(event: FeedEvent): void {
    this.#ring.push(event);
    this.#deliver(event);
  }

  /** Ends every iterator; later ones end at once. */
  end(): void {
    this.#ended = true;
    for (const it of this.#iterators) it.push(null);
  }

  /** The events from now on, until end(). */
  iterator(): AsyncIterator<WatchEvent> {
    const queue: (WatchEvent | null)[] = [];
    let waiting: ((r: IteratorResult<WatchEvent>) => void) | undefined;
    const it: Pusher = {
      push: (e) => {
        if (waiting) {
          const w = waiting;
          waiting = undefined;
          w(e ? { value: e, done: false } : { value: undefined, done: true });
        } else queue.push(e);
      },
    };
    if (this.#ended) it.push(null);
    else this.#iterators.add(it);
    return {
      next: () => {
        if (queue.length > 0) {
          const e = queue.shift() as WatchEvent | null;
          return Promise.resolve(e ? { value: e, done: false } : { value: undefined, done: true });
        }
        return new Promise((resolve) => (waiting = resolve));
      },
      return: () => {
        this.#iterators.delete(it);
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
