// The serve command's HTTP server over a running watcher: the API, the event stream, the
// metrics, service discovery and the dashboard. Loopback by default; any other address needs
// a token, checked in constant time on every request (Bearer, or the HttpOnly cookie the
// page gets once from /?token=…), after the Host (allowed-hosts.ts, against DNS rebinding).
// GET and HEAD only, no body, bounded headers, connections (connection-guard.ts) and stream
// clients; every answer with nosniff and a strict Content-Security-Policy, and no CORS header
// ever.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { isLoopbackAddress } from '../common/addresses.js';
import { normalizeServeOptions, type ServeTuning } from '../common/options.js';
import type { WatchEvent, WatchSnapshot } from '../watch/types.js';
import type { Watcher } from '../watch/watcher.js';
import { hostCheck } from './allowed-hosts.js';
import { guardConnections } from './connection-guard.js';
import {
  backendsFragment,
  CONTENT_SECURITY_POLICY,
  coordinatorFragment,
  displayState,
  droppedFragment,
  eventsFragment,
  memoryFragment,
  renderPage,
  scannersFragment,
  summaryFragment,
  totalsFragment,
} from './dashboard.js';
import { EventStream } from './event-stream.js';
import type { HttpDiscovery } from './http-discovery.js';
import { ServeMetrics } from './metrics.js';

const MAX_CONNECTIONS = 512;
/**
 * One client's share of MAX_CONNECTIONS: above the default 100 event streams, so that a reverse
 * proxy on this machine (one address for all its users) can carry them all.
 */
const MAX_CONNECTIONS_PER_CLIENT = 128;
const HEADERS_TIMEOUT_MS = 5000;
const MAX_HEADER_BYTES = 8 * 1024;
const MAX_HEADERS = 64;
/** Events the page lists. */
const RECENT_EVENTS = 50;
const COOKIE = 'sb_token';

export interface ServeOptions extends ServeTuning {
  host: string;
  port: number;
  /** Required unless `host` is a loopback address. */
  token?: string;
  discovery?: HttpDiscovery;
}

export interface ServeHandle {
  url: string;
  metrics: ServeMetrics;
  /** Ends every event stream, stops accepting, closes idle connections. */
  close(): Promise<void>;
}

/** The API's view of one backend: the watcher's, with `status` as the page shows it and its last event. */
export function backendsDocument(snapshot: WatchSnapshot, lastEvents: Map<number, WatchEvent>) {
  return {
    schema: 1 as const,
    watcher: snapshot.watcher,
    rpc: snapshot.rpc,
    lastEventId: snapshot.lastEventId,
    ...(snapshot.coordinator ? { coordinator: snapshot.coordinator } : {}),
    ...(snapshot.dropped ? { dropped: snapshot.dropped } : {}),
    backends: snapshot.backends.map((b) => {
      const lastEvent = b.lastEventId === undefined ? undefined : lastEvents.get(b.lastEventId);
      return {
        ...b,
        status: displayState(b),
        ...(lastEvent ? { lastEvent: { ...lastEvent, backend: undefined } } : {}),
      };
    }),
  };
}

const digest = (text: string) => createHash('sha256').update(text).digest();

const COMMON_HEADERS: Readonly<Record<string, string>> = {
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

/** The last event of each backend, and the recent ones, without walking the ring per request. */
class RecentEvents {
  readonly byId = new Map<number, WatchEvent>();
  readonly recent: WatchEvent[] = [];

  constructor(watcher: Watcher) {
    watcher.on('event', (e) => {
      this.recent.push(e);
      if (this.recent.length > RECENT_EVENTS) this.recent.shift();
      this.byId.set(e.id, e);
      if (this.byId.size > 4 * RECENT_EVENTS) {
        const live = new Set(watcher.view().backends.map((b) => b.lastEventId));
        for (const id of this.byId.keys()) {
          if (!live.has(id) && !this.recent.some((r) => r.id === id)) this.byId.delete(id);
        }
      }
    });
  }
}

/** The token a request carries: Bearer, else the page's cookie. */
function tokenOf(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  const cookie = req.headers.cookie
    ?.split(';')
    .map((c) => c.trim())
    .find((c) => c.startsWith(`${COOKIE}=`));
  if (cookie === undefined) return undefined;
  try {
    return decodeURIComponent(cookie.slice(COOKIE.length + 1));
  } catch {
    return undefined; // malformed: no token, so 401 rather than a 500
  }
}

/** Writes one answer: the common headers, Server-Timing, no body for HEAD. */
type Send = (status: number, type: string, body: string, extra?: Record<string, string>) => void;

/** What every request is answered from. */
interface Served {
  watcher: Watcher;
  discovery: HttpDiscovery | undefined;
  metrics: ServeMetrics;
  stream: EventStream;
  events: RecentEvents;
  hostAllowed: (host: string | undefined) => boolean;
  /** The token's digest; undefined: no token asked for. */
  expected: Buffer | undefined;
}

function authorized(served: Served, given: string | undefined): boolean {
  return served.expected === undefined || (given !== undefined && timingSafeEqual(digest(given), served.expected));
}

/**
 * The checks before any route: a parsable URL, an allowed Host, GET or HEAD without a body,
 * the one-time login, the token. Returns the URL to route, or the route name it answered as.
 */
function admit(served: Served, req: IncomingMessage, res: ServerResponse, send: Send): URL | string {
  const target = req.url ?? '/';
  let url: URL;
  try {
    url = new URL(target, 'http://serve.invalid');
  } catch {
    res.writeHead(400, { 'Content-Length': '0', Connection: 'close' }).end();
    return 'other';
  }
  // An absolute URL's authority is the one the request names (RFC 9112, 3.2.2), not Host.
  if (!served.hostAllowed(target.startsWith('/') ? req.headers.host : url.host)) {
    res.writeHead(421, { 'Content-Length': '0' }).end();
    return 'misdirected';
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(405, 'text/plain; charset=utf-8', 'GET or HEAD only\n', { Allow: 'GET, HEAD' });
    return 'other';
  }
  if (Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding']) {
    send(413, 'text/plain; charset=utf-8', 'no request body is taken\n', { Connection: 'close' });
    return 'other';
  }
  // The page's one-time login: a valid ?token= becomes the HttpOnly cookie, and the token
  // leaves the address bar.
  const fromQuery = url.pathname === '/' ? url.searchParams.get('token') : null;
  if (fromQuery !== null && served.expected !== undefined && authorized(served, fromQuery)) {
    res.writeHead(303, {
      ...COMMON_HEADERS,
      Location: '/',
      'Set-Cookie': `${COOKIE}=${encodeURIComponent(fromQuery)}; HttpOnly; SameSite=Strict; Path=/`,
    });
    res.end();
    return 'login';
  }
  if (!authorized(served, tokenOf(req))) {
    res.writeHead(401, { 'WWW-Authenticate': 'Bearer', 'Content-Length': '0' });
    res.end();
    return 'unauthorized';
  }
  return url;
}

/** Answers an admitted request; returns its route name (the metric's label). */
async function route(served: Served, url: URL, req: IncomingMessage, res: ServerResponse, send: Send) {
  const { watcher, events } = served;
  const json = (status: number, value: unknown) =>
    send(status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`);
  const html = (body: string) => send(200, 'text/html; charset=utf-8', body);
  switch (url.pathname) {
    case '/healthz': {
      // Alive: the process answers and the watcher's loop is not stuck in one step.
      const stuck = watcher.busyForMs() > 5 * 60_000;
      json(stuck ? 503 : 200, { status: stuck ? 'stuck' : 'ok', busyForMs: Math.round(watcher.busyForMs()) });
      return 'healthz';
    }
    case '/readyz': {
      const ready = watcher.view().watcher.ready;
      json(ready ? 200 : 503, { status: ready ? 'ready' : 'starting' });
      return 'readyz';
    }
    case '/api/backends':
      json(200, backendsDocument(watcher.view(), events.byId));
      return 'backends';
    case '/api/history':
      json(200, watcher.history());
      return 'history';
    case '/api/scanners':
      json(200, { schema: 1, scanners: await watcher.scanners() });
      return 'scanners';
    case '/api/prometheus-sd':
      json(200, served.discovery?.serviceDiscovery() ?? []);
      return 'prometheus-sd';
    case '/metrics':
      send(200, served.metrics.registry.contentType, await served.metrics.render());
      return 'metrics';
    case '/api/events':
      if (!served.stream.accept(req, res, url, COMMON_HEADERS)) {
        send(503, 'text/plain; charset=utf-8', 'too many event-stream clients\n', { 'Retry-After': '10' });
      }
      return 'events';
    case '/fragments/backends':
      html(backendsFragment(watcher.view(), events.byId, watcher.history()));
      return 'fragments';
    case '/fragments/totals':
      html(totalsFragment(watcher.view()));
      return 'fragments';
    case '/fragments/memory':
      html(memoryFragment(watcher.history()));
      return 'fragments';
    case '/fragments/dropped':
      html(droppedFragment(watcher.view().dropped));
      return 'fragments';
    case '/fragments/summary':
      html(summaryFragment(watcher.view()));
      return 'fragments';
    case '/fragments/events':
      html(eventsFragment(events.recent));
      return 'fragments';
    case '/fragments/coordinator':
      html(coordinatorFragment(watcher.view().coordinator));
      return 'fragments';
    case '/fragments/scanners':
      html(scannersFragment(await watcher.scanners()));
      return 'fragments';
    case '/favicon.ico':
      res.writeHead(204, COMMON_HEADERS).end(); // no icon, and no 404 in the browser's console
      return 'other';
    case '/':
      html(renderPage(watcher.view(), events.byId, events.recent, await watcher.scanners(), watcher.history()));
      return 'page';
    default:
      send(404, 'text/plain; charset=utf-8', 'not found\n');
      return 'other';
  }
}

async function handle(served: Served, req: IncomingMessage, res: ServerResponse): Promise<string> {
  const started = performance.now();
  // Server-Timing: how long the answer took to make, for the bench and for curious operators.
  const send: Send = (status, type, body, extra = {}) => {
    const timing = { 'Server-Timing': `app;dur=${(performance.now() - started).toFixed(2)}` };
    res.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': type, ...timing, ...extra });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const url = admit(served, req, res, send);
  return typeof url === 'string' ? url : route(served, url, req, res, send);
}

export async function startServer(watcher: Watcher, given: ServeOptions): Promise<ServeHandle> {
  const options = normalizeServeOptions(given);
  if (!isLoopbackAddress(options.host) && !options.token) {
    throw new Error(
      `listening on ${options.host} (not loopback) needs a token: --token-file FILE or $SCAN_BACKENDS_TOKEN`,
    );
  }
  const metrics = new ServeMetrics(watcher);
  const served: Served = {
    watcher,
    discovery: options.discovery,
    metrics,
    stream: new EventStream(watcher, {
      maxClients: options.maxSseClients,
      onCount: (n) => metrics.setSseClients(n),
      onDrop: () => metrics.droppedEvents.inc({ reason: 'slow-client' }),
    }),
    events: new RecentEvents(watcher),
    hostAllowed: hostCheck(options.host, options.allowHosts),
    expected: options.token === undefined ? undefined : digest(options.token),
  };
  const server: Server = createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      requestTimeout: 10_000,
      headersTimeout: HEADERS_TIMEOUT_MS,
      // Node looks at the header timeout only this often (default 30 s, which let slow
      // connections hold their places six times as long).
      connectionsCheckingInterval: 1000,
    },
    (req, res) => {
      handle(served, req, res).then(
        (name) => metrics.requests.inc({ route: name, status: String(res.statusCode) }),
        () => {
          if (!res.headersSent) res.writeHead(500, COMMON_HEADERS).end();
          else res.destroy();
        },
      );
    },
  );
  guardConnections(server, { total: MAX_CONNECTIONS, perClient: MAX_CONNECTIONS_PER_CLIENT }, (because) =>
    metrics.closedConnections.inc({ because }),
  );
  server.maxHeadersCount = MAX_HEADERS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    metrics,
    close: async () => {
      served.stream.closeAll();
      options.discovery?.close();
      // A browser keeps its connections alive and reconnects its event stream at once: idle
      // ones close now, busy ones get a second to finish, then every one is closed, so a
      // SIGTERM never waits on a client.
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 1000).unref();
      });
    },
  };
}
