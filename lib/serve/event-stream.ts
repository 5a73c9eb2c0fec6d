// GET /api/events: the watcher's events (a supervised coordinator's among them, `run`) as
// Server-Sent Events. Each event carries its `id:`; a client that reconnects with
// Last-Event-ID gets what it missed from the ring, or a `reset` event when that is gone (it
// reloads the view). A comment every 15 s keeps proxies from
// closing the stream; `X-Accel-Buffering: no` keeps them from holding it back. Clients are
// counted and capped; one that stops reading is cut off (it reconnects and replays).
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { FeedEvent } from '../watch/types.js';
import type { Watcher } from '../watch/watcher.js';

export const KEEP_ALIVE_MS = 15_000;
export const RETRY_MS = 3000;
/** Bytes queued for one client before it counts as gone. */
const MAX_QUEUED_BYTES = 1024 * 1024;

function frame(event: FeedEvent): string {
  return `id: ${event.id}\ndata: ${JSON.stringify(event)}\n\n`;
}

export class EventStream {
  readonly #watcher: Watcher;
  readonly #maxClients: number;
  readonly #clients = new Set<ServerResponse>();
  readonly #onCount: (n: number) => void;
  readonly #onDrop: () => void;
  readonly #keepAlive: NodeJS.Timeout;

  constructor(watcher: Watcher, options: { maxClients: number; onCount: (n: number) => void; onDrop: () => void }) {
    this.#watcher = watcher;
    this.#maxClients = options.maxClients;
    this.#onCount = options.onCount;
    this.#onDrop = options.onDrop;
    const broadcast = (event: FeedEvent) => {
      const text = frame(event);
      for (const res of this.#clients) this.#send(res, text);
    };
    watcher.on('event', broadcast);
    watcher.on('coordinator', broadcast);
    this.#keepAlive = setInterval(() => {
      for (const res of this.#clients) this.#send(res, ': keep-alive\n\n');
    }, KEEP_ALIVE_MS);
    this.#keepAlive.unref();
  }

  get clients(): number {
    return this.#clients.size;
  }

  #send(res: ServerResponse, text: string): void {
    if (res.writableLength > MAX_QUEUED_BYTES) {
      this.#onDrop();
      res.destroy();
      return;
    }
    res.write(text);
  }

  /**
   * Serves one client; false when the cap is reached (the caller answers 503). HEAD gets the
   * stream's headers and no stream, so it holds no place.
   */
  accept(req: IncomingMessage, res: ServerResponse, url: URL, headers: Record<string, string>): boolean {
    if (this.#clients.size >= this.#maxClients) return false;
    const resume = req.headers['last-event-id'] ?? url.searchParams.get('lastEventId') ?? undefined;
    res.writeHead(200, {
      ...headers,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-store, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    if (req.method === 'HEAD') {
      res.end();
      return true;
    }
    res.socket?.setNoDelay(true);
    let text = `retry: ${RETRY_MS}\n\n`;
    if (typeof resume === 'string' && /^\d{1,15}$/.test(resume)) {
      const missed = this.#watcher.eventsSince(Number(resume));
      text +=
        missed === null
          ? `event: reset\ndata: ${JSON.stringify({ lastEventId: this.#watcher.snapshot().lastEventId })}\n\n`
          : missed.map(frame).join('');
    }
    res.write(text);
    this.#clients.add(res);
    this.#onCount(this.#clients.size);
    res.on('close', () => {
      this.#clients.delete(res);
      this.#onCount(this.#clients.size);
    });
    return true;
  }

  /** Shutdown: every stream ends now. */
  closeAll(): void {
    clearInterval(this.#keepAlive);
    for (const res of this.#clients) res.end();
    this.#clients.clear();
    this.#onCount(0);
  }
}
