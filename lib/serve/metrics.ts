// /metrics: the watcher's view in Prometheus's text format, through prom-client with a
// registry of its own (plus the default process metrics). Per-backend gauges are set from the
// snapshot at each scrape, so a removed backend's series go with it.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import { formatHostPort } from '../common/host-port.js';
import type { CoordinatorStatus } from '../watch/types.js';
import type { Watcher } from '../watch/watcher.js';

export class ServeMetrics {
  readonly registry = new Registry();
  readonly #watcher: Watcher;
  readonly #up: Gauge;
  readonly #busy: Gauge;
  readonly #down: Gauge;
  readonly #free: Gauge;
  readonly #total: Gauge;
  readonly #flaps: Gauge;
  readonly #usable: Gauge;
  readonly #redis: Gauge;
  readonly #redisIgnored: Counter;
  /** The watcher's ignored counts at the last scrape, so the counter grows by what is new. */
  readonly #redisIgnoredSeen: Record<string, number> = {};
  readonly #sseClients: Gauge;
  /** Registered at the first scrape that sees a supervised coordinator (`run`): absent without one. */
  readonly #coordinator = {
    up: new Gauge({
      name: 'scan_backends_coordinator_up',
      help: 'The supervised coordinator is ready: 1, else 0.',
      registers: [],
    }),
    restarts: new Counter({
      name: 'scan_backends_coordinator_restarts_total',
      help: 'Times the supervisor restarted the coordinator.',
      registers: [],
    }),
    readySeconds: new Gauge({
      name: 'scan_backends_coordinator_ready_seconds',
      help: "The coordinator's last start-to-ready time.",
      registers: [],
    }),
  };
  #coordinatorRestartsSeen?: number;
  readonly droppedEvents: Counter;
  readonly requests: Counter;
  readonly closedConnections: Counter;

  constructor(watcher: Watcher) {
    this.#watcher = watcher;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'scan_backends_' });
    const gauge = (name: string, help: string, labelNames: string[] = []) =>
      new Gauge({ name, help, labelNames, registers });
    this.#up = gauge('scan_backends_backend_up', 'The backend is up (serving or busy): 1, else 0.', ['backend']);
    this.#busy = gauge('scan_backends_backend_busy', 'The backend is up and busy with a client: 1, else 0.', [
      'backend',
    ]);
    this.#down = gauge('scan_backends_backend_down', 'The backend failed fail-after checks in a row: 1, else 0.', [
      'backend',
    ]);
    this.#free = gauge('scan_backends_device_free_bytes', 'Free memory of a backend device, from its last HELLO.', [
      'backend',
      'device',
    ]);
    this.#total = gauge('scan_backends_device_total_bytes', 'Total memory of a backend device.', ['backend', 'device']);
    this.#flaps = gauge('scan_backends_backend_flaps', 'Times the backend went down after being up.', ['backend']);
    this.#usable = gauge(
      'scan_backends_backend_usable',
      'The backend is in the usable list (up, verified, of the protocol one client can use): 1, else 0.',
      ['backend'],
    );
    this.#redisIgnored = new Counter({
      name: 'scan_backends_redis_ignored_total',
      help: 'Values read from the shared Redis and ignored (misshapen, too large, stale, unsigned, out of scope), by kind.',
      labelNames: ['kind'],
      registers,
    });
    // Registered at the first scrape that sees a Redis, so a watcher without one has no series.
    this.#redis = new Gauge({
      name: 'scan_backends_redis_connected',
      help: 'The shared Redis is connected: 1, 0 when lost; absent without one.',
      registers: [],
    });
    this.#sseClients = gauge('scan_backends_sse_clients', 'Event-stream clients connected now.');
    this.droppedEvents = new Counter({
      name: 'scan_backends_events_dropped_total',
      help: 'Events a consumer did not get: evicted from the ring, or not sent to a client too slow to read.',
      labelNames: ['reason'],
      registers,
    });
    this.requests = new Counter({
      name: 'scan_backends_http_requests_total',
      help: 'HTTP requests answered, by route and status.',
      labelNames: ['route', 'status'],
      registers,
    });
    this.closedConnections = new Counter({
      name: 'scan_backends_http_connections_closed_total',
      help: "Connections closed by the limits: per-client (over one client's share), replaced (an idle or slow one made room at the cap), full (the cap held only busy ones).",
      labelNames: ['because'],
      registers,
    });
    const transitions = new Counter({
      name: 'scan_backends_transitions_total',
      help: 'Events by type: added, removed, up, down, changed.',
      labelNames: ['type'],
      registers,
    });
    const probe = new Histogram({
      name: 'scan_backends_probe_duration_seconds',
      help: 'Connect and HELLO time of a health check or resolve probe.',
      labelNames: ['check'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    const cycles = new Histogram({
      name: 'scan_backends_cycle_duration_seconds',
      help: 'Duration of a step of the loop: a resolve (with its scan) or a health round.',
      labelNames: ['kind'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    const rate = gauge('scan_backends_scan_targets_per_second', 'Host:port pairs per second of the last scan.');
    const scanned = gauge('scan_backends_scan_targets', 'Host:port pairs the last scan connected to.');
    watcher.on('event', (e) => transitions.inc({ type: e.type }));
    watcher.on('check', (c) => {
      if (c.elapsedMs !== undefined) probe.observe({ check: c.check }, c.elapsedMs / 1000);
    });
    watcher.on('cycle', (c) => {
      cycles.observe({ kind: c.kind }, c.elapsedMs / 1000);
      if (c.scanned !== undefined) {
        scanned.set(c.scanned);
        rate.set(c.elapsedMs > 0 ? c.scanned / (c.elapsedMs / 1000) : 0);
      }
    });
  }

  setSseClients(n: number): void {
    this.#sseClients.set(n);
  }

  /** The text Prometheus scrapes, per-backend series set from the view now. */
  async render(): Promise<string> {
    const snapshot = this.#watcher.view();
    for (const g of [this.#up, this.#busy, this.#down, this.#free, this.#total, this.#flaps, this.#usable]) g.reset();
    for (const b of snapshot.backends) {
      const backend = formatHostPort(b);
      const up = b.state === 'up';
      this.#up.set({ backend }, up ? 1 : 0);
      this.#busy.set({ backend }, up && b.health === 'busy' ? 1 : 0);
      this.#down.set({ backend }, up ? 0 : 1);
      this.#flaps.set({ backend }, b.flaps);
      this.#usable.set({ backend }, b.usable === true ? 1 : 0);
      for (const d of b.rpc?.devices ?? []) {
        this.#free.set({ backend, device: String(d.index) }, d.freeBytes);
        this.#total.set({ backend, device: String(d.index) }, d.totalBytes);
      }
    }
    if (snapshot.watcher.redis) {
      if (!this.registry.getSingleMetric('scan_backends_redis_connected')) this.registry.registerMetric(this.#redis);
      this.#redis.set(snapshot.watcher.redis.connected ? 1 : 0);
      for (const [kind, n] of Object.entries(snapshot.watcher.redis.ignored ?? {})) {
        this.#redisIgnored.inc({ kind }, n - (this.#redisIgnoredSeen[kind] ?? 0));
        this.#redisIgnoredSeen[kind] = n;
      }
    }
    if (snapshot.coordinator) this.#setCoordinator(snapshot.coordinator);
    return this.registry.metrics();
  }

  #setCoordinator(status: CoordinatorStatus): void {
    const { up, restarts, readySeconds } = this.#coordinator;
    if (this.#coordinatorRestartsSeen === undefined) {
      for (const metric of [up, restarts]) this.registry.registerMetric(metric);
      this.#coordinatorRestartsSeen = 0;
    }
    up.set(status.state === 'ready' ? 1 : 0);
    restarts.inc(status.restarts - this.#coordinatorRestartsSeen);
    this.#coordinatorRestartsSeen = status.restarts;
    if (status.lastMsToReady === undefined) return;
    // No time to ready before the first ready: absent rather than 0.
    if (!this.registry.getSingleMetric('scan_backends_coordinator_ready_seconds'))
      this.registry.registerMetric(readySeconds);
    readySeconds.set(status.lastMsToReady / 1000);
  }
}
