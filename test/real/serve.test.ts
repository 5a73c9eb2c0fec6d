// `scan-backends serve` on loopback: the API contract, the event stream and its replay, the
// metrics, the limits and headers every answer carries, resolve --from, and a SIGTERM that
// ends the open streams. Real peers on 127.0.1.x, real HTTP.
import { describe, expect, it, onTestFinished } from 'vitest';

import { startServer } from '../../lib/serve/server.js';
import type { WatchEvent } from '../../lib/watch/types.js';
import { watchBackends } from '../../lib/watch/watcher.js';
import { runCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { get, sse } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';
import { valid } from '../helpers/schemas.js';
import { isEvent, isLog, startWatch, type LogLine } from '../helpers/watch.js';

describe('serve', () => {
  it('answers the API, streams events with replay, exports metrics, keeps its limits, and ends streams on SIGTERM', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.100' });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.101' });
    const config = configFile([`127.0.1.100:${a.port}`, `127.0.1.101:${b.port}`]);
    const serve = startWatch(
      [
        '--sources',
        'config',
        '--config',
        config,
        '--listen',
        '127.0.0.1:0',
        '--health-interval',
        '200ms',
        '--timeout',
        '300',
        '--probe-timeout',
        '500',
        '--max-sse-clients',
        '2',
        '--http-ports',
        '9',
      ],
      {},
      'serve',
    );
    const url = (await serve.waitFor<LogLine>('serving', isLog('serving'))).url as string;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await serve.waitFor('added .101', isEvent('added', '127.0.1.101'));
    expect((await get(`${url}/readyz`)).status).toBe(200);
    expect(JSON.parse((await get(`${url}/healthz`)).body)).toMatchObject({ status: 'ok' });

    const backends = await get(`${url}/api/backends`);
    expect(backends.headers['content-type']).toBe('application/json; charset=utf-8');
    const doc = JSON.parse(backends.body);
    expect(valid('serve-backends', doc)).toBe('valid');
    expect(doc.backends.map((x: { host: string; status: string }) => [x.host, x.status])).toEqual([
      ['127.0.1.100', 'up'],
      ['127.0.1.101', 'up'],
    ]);
    expect(doc.backends[0].lastEvent).toMatchObject({ type: 'added', cause: { check: 'resolve' } });
    expect(doc.backends[0].namedAt.config).toMatch(/^\d{4}-/);
    expect(JSON.parse((await get(`${url}/api/scanners`)).body)).toEqual({ schema: 1, scanners: [] });
    expect(JSON.parse((await get(`${url}/api/prometheus-sd`)).body)).toEqual([]);

    // Every answer: nosniff, the CSP, no CORS, no caching.
    for (const path of ['/', '/api/backends', '/metrics', '/readyz', '/nope']) {
      const answer = await get(`${url}${path}`, { headers: { Origin: 'http://evil.example' } });
      expect(answer.headers['x-content-type-options'], path).toBe('nosniff');
      expect(answer.headers['content-security-policy'], path).toMatch(/^default-src 'none'; script-src 'sha256-/);
      expect(
        Object.keys(answer.headers).filter((h) => h.startsWith('access-control-')),
        path,
      ).toEqual([]);
    }
    const page = await get(`${url}/`);
    expect(page.body).toContain('<caption>RPC backends');
    expect(page.body).toMatch(/<th scope="row">127\.0\.1\.100:\d+<\/th>/);
    // UP with what its last check saw in the title: the reason once, not beside every UP.
    expect(page.body).toMatch(/<span class="badge up" title="[^"]+">UP<\/span>/);

    // Replay from Last-Event-ID, then live events.
    const all = await sse(`${url}/api/events`, { 'Last-Event-ID': '0' });
    const fromOne = await sse(`${url}/api/events`, { 'Last-Event-ID': '1' });
    expect(all.status).toBe(200);
    expect(all.text()).toMatch(/^retry: 3000\n\n/);
    await eventually(() => all.events().length >= 2, 3000);
    expect(all.events().map((e) => [e.id, (e.data as WatchEvent).type])).toEqual([
      ['1', 'added'],
      ['2', 'added'],
    ]);
    await eventually(() => fromOne.events().length >= 1, 3000);
    expect(fromOne.events().map((e) => e.id)).toEqual(['2']);
    // The cap: a third stream is refused, cleanly.
    const third = await get(`${url}/api/events`);
    expect(third.status).toBe(503);
    expect(third.headers['retry-after']).toBe('10');
    await b.close();
    expect(await eventually(() => all.events().some((e) => (e.data as WatchEvent).type === 'down'), 5000)).toBe(true);
    const down = all.events().find((e) => (e.data as WatchEvent).type === 'down');
    expect(down?.id).toBe('3');
    expect(valid('watch-event', down?.data)).toBe('valid');

    // Metrics, as Prometheus reads them.
    const metrics = await get(`${url}/metrics`);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metrics.body).toContain(`scan_backends_backend_up{backend="127.0.1.100:${a.port}"} 1`);
    expect(metrics.body).toContain(`scan_backends_backend_down{backend="127.0.1.101:${b.port}"} 1`);
    expect(metrics.body).toContain(`scan_backends_device_total_bytes{backend="127.0.1.100:${a.port}",device="0"}`);
    expect(metrics.body).toMatch(/scan_backends_transitions_total\{type="down"\} 1/);
    expect(metrics.body).toMatch(/scan_backends_probe_duration_seconds_count\{check="health"\} \d+/);
    expect(metrics.body).toContain('scan_backends_sse_clients 2');
    expect(metrics.body).not.toContain('scan_backends_redis_connected'); // no Redis given: no series
    expect(metrics.body).toMatch(/scan_backends_process_resident_memory_bytes \d+/);

    // resolve --from: the live view in one request.
    const from = await runCli(['resolve', '--from', url, '--format', 'rpc']);
    expect(from).toMatchObject({ code: 0, stdout: `127.0.1.100:${a.port}\n` });
    const missing = await runCli(['resolve', '--from', 'http://127.0.0.1:9']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/--from http:\/\/127\.0\.0\.1:9: no serve instance answers there \(ECONNREFUSED\)/);

    // Limits: methods, bodies, oversized headers.
    expect((await get(`${url}/api/backends`, { method: 'POST' })).status).toBe(405);
    expect((await get(`${url}/api/backends`, { headers: { 'Content-Length': '5' }, body: 'hello' })).status).toBe(413);
    expect((await get(`${url}/`, { headers: { Cookie: `x=${'a'.repeat(10_000)}` } })).status).toBe(431);

    serve.signal('SIGTERM');
    await Promise.all([all.ended, fromOne.ended]);
    expect(await serve.exited).toEqual({ code: 0, signal: null });
    expect(serve.logs.at(-1)?.msg).toBe('stopped');
  }, 40_000);

  it('tells a client that resumes from an id the ring no longer holds to start over (reset)', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.102' });
    const config = configFile([`127.0.1.102:${a.port}`, '127.0.1.103:1', '127.0.1.104:1']);
    const watcher = watchBackends({
      sources: ['config'],
      configPath: config,
      eventRingSize: 1,
      healthIntervalMs: 100,
      failAfter: 1,
      recoverAfter: 1,
      timeoutMs: 300,
      probeTimeoutMs: 500,
    });
    onTestFinished(() => watcher.close());
    const server = await startServer(watcher, { host: '127.0.0.1', port: 0 });
    onTestFinished(() => server.close());
    await watcher.ready;
    await a.close();
    await eventually(() => watcher.snapshot().lastEventId >= 2, 5000);
    const stream = await sse(`${server.url}/api/events`, { 'Last-Event-ID': '0' });
    await eventually(() => /event: reset/.test(stream.text()), 3000);
    expect(stream.text()).toMatch(/^retry: 3000\n\nevent: reset\ndata: \{"lastEventId":2\}\n\n/);
    stream.close();
  });

  it('exports scan_backends_redis_connected once the watcher has a Redis: 1 while connected', async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.kill());
    const watcher = watchBackends({ sources: ['redis'], redisUrl: redis.url, healthIntervalMs: 200 });
    onTestFinished(() => watcher.close());
    const server = await startServer(watcher, { host: '127.0.0.1', port: 0 });
    onTestFinished(() => server.close());
    await watcher.ready;
    expect(
      await eventually(
        async () => /^scan_backends_redis_connected 1$/m.test((await get(`${server.url}/metrics`)).body),
        5000,
      ),
    ).toBe(true);
  });
});
