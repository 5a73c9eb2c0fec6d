// The HTTP backends for Prometheus's HTTP service discovery: every resolve interval the
// serve command scans its HTTP targets (the --subnet list, else the hosts of the backends it
// follows) on the HTTP ports with the HTTP probe, and keeps the llama-server and vLLM
// endpoints whose /metrics answers in Prometheus's text format. Bounded like every probe:
// a deadline and a byte budget per /metrics read.
import { request } from 'node:http';

import { formatHostPort } from '../common/host-port.js';
import { scanAll } from '../scan/job.js';
import type { Watcher } from '../watch/watcher.js';

/** llama-server's default port, and vLLM's. */
const METRICS_BUDGET_BYTES = 64 * 1024;

export interface MetricsTarget {
  host: string;
  port: number;
  service: string;
  version?: string;
}

/** GET /metrics: true when it answers 200 with what Prometheus's text format starts with. */
export function exposesMetrics(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/metrics', method: 'GET', timeout: timeoutMs }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve(false);
        req.destroy();
        return;
      }
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (text.length >= 512 || Buffer.byteLength(text) > METRICS_BUDGET_BYTES) req.destroy();
      });
      const judge = () => resolve(/^(# (HELP|TYPE) |[a-zA-Z_:][a-zA-Z0-9_:]*[{ ])/.test(text));
      res.on('end', judge);
      res.on('close', judge);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

export class HttpDiscovery {
  #targets: MetricsTarget[] = [];
  readonly #timer: NodeJS.Timeout;
  #running = false;

  constructor(
    readonly watcher: Watcher,
    readonly options: {
      subnet?: string | readonly string[];
      ports: readonly number[];
      intervalMs: number;
      timeoutMs: number;
      probeTimeoutMs: number;
      allowPublic?: boolean;
      log: (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void;
    },
  ) {
    this.#timer = setInterval(() => void this.sweep(), options.intervalMs);
    this.#timer.unref();
    void watcher.ready.then(() => this.sweep());
  }

  get targets(): readonly MetricsTarget[] {
    return this.#targets;
  }

  /** One sweep (never two at once); a failure is logged and the last list kept. */
  async sweep(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      const hosts = this.options.subnet ?? [...new Set(this.watcher.snapshot().backends.map((b) => b.host))];
      if (hosts.length === 0) {
        this.#targets = [];
        return;
      }
      const report = await scanAll(hosts, {
        ports: [...this.options.ports],
        probe: ['http'],
        timeoutMs: this.options.timeoutMs,
        probeTimeoutMs: this.options.probeTimeoutMs,
        allowPublic: this.options.allowPublic,
      });
      const found: MetricsTarget[] = [];
      for (const r of report.results) {
        const product = r.http?.product;
        if (r.state !== 'open' || (product !== 'llama-server' && product !== 'vllm')) continue;
        if (!(await exposesMetrics(r.host, r.port, this.options.probeTimeoutMs))) continue;
        const target: MetricsTarget = { host: r.host, port: r.port, service: product };
        if (r.http?.version) target.version = r.http.version;
        found.push(target);
      }
      const before = this.#targets.map(formatHostPort).join(',');
      this.#targets = found;
      if (found.map(formatHostPort).join(',') !== before) {
        this.options.log('info', 'metrics targets', { targets: found.map(formatHostPort) });
      }
    } catch (error) {
      this.options.log('warn', 'HTTP discovery failed; keeping the last targets', { error: (error as Error).message });
    } finally {
      this.#running = false;
    }
  }

  /** Prometheus http_sd_configs JSON: one group per target, labelled with what it is. */
  serviceDiscovery(): { targets: string[]; labels: Record<string, string> }[] {
    return this.#targets.map((t) => ({
      targets: [formatHostPort(t)],
      labels: { service: t.service, ...(t.version ? { version: t.version } : {}) },
    }));
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
