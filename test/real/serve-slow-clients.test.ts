// serve under slow and idle clients (issue 18): 600 connections that drip one header line every
// 2 s, or send nothing, took /healthz to 0 answers of 12 and locked out the requests carrying
// the token, because the connection cap filled before authentication and Node looked at the
// header timeout only every 30 s. Real serve process on 127.0.181.1, crowds from other
// addresses of 127.0.181.0/24.
import { describe, expect, it } from 'vitest';

import { configFile, tokenFile } from '../helpers/config.js';
import { get } from '../helpers/http.js';
import { slowCrowd } from '../helpers/slow-clients.js';
import { isLog, startWatch, type LogLine } from '../helpers/watch.js';

const TOKEN = 'slow clients are not a reason';
const AUTH = { Authorization: `Bearer ${TOKEN}` };

async function startServe(): Promise<{ url: string; port: number }> {
  const serve = startWatch(
    [
      '--sources',
      'config',
      '--config',
      configFile([]),
      '--listen',
      '127.0.181.1:0',
      '--token-file',
      tokenFile(TOKEN),
      '--http-ports',
      '9',
    ],
    {},
    'serve',
  );
  const url = (await serve.waitFor<LogLine>('serving', isLog('serving'))).url as string;
  return { url, port: Number(new URL(url).port) };
}

/** Asks `path` once a second, 12 times, from `from`; counts the answers with `status` within 2 s. */
async function answersOf12(url: string, path: string, from: string, status: number): Promise<number> {
  let answered = 0;
  for (let round = 0; round < 12; round++) {
    const started = performance.now();
    const answer = await get(`${url}${path}`, { headers: AUTH, localAddress: from, timeoutMs: 2000 }).catch(
      () => undefined,
    );
    if (answer?.status === status) answered += 1;
    await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (performance.now() - started))));
  }
  return answered;
}

const addresses = (first: number, count: number) => Array.from({ length: count }, (_, i) => `127.0.181.${first + i}`);

describe('serve under slow and idle clients', () => {
  it('answers /healthz and token-carrying requests while 600 dripping connections from 4 addresses stay open', async () => {
    const { url, port } = await startServe();
    // 150 an address: each over its share (128), and the four shares fill all 512 places.
    const crowd = slowCrowd({ host: '127.0.181.1', port, from: addresses(10, 4), size: 600, mode: 'drip' });
    await new Promise((r) => setTimeout(r, 2000));
    const [healthz, backends] = await Promise.all([
      answersOf12(url, '/healthz', '127.0.181.2', 200),
      answersOf12(url, '/api/backends', '127.0.181.3', 200),
    ]);
    const lifetimes = crowd.lifetimesMs();
    crowd.stop();
    expect(
      Math.min(healthz, backends),
      `answers of 12: /healthz ${healthz}, /api/backends with the token ${backends}`,
    ).toBeGreaterThanOrEqual(11);
    // Nobody dripped past the header timeout (5 s, checked every second).
    expect(lifetimes.length).toBeGreaterThan(0);
    expect(Math.max(...lifetimes)).toBeLessThan(7000);
    // Both limits were at work: shares refused, slow connections replaced at the cap.
    const metrics = (await get(`${url}/metrics`, { headers: AUTH, localAddress: '127.0.181.2' })).body;
    const closed = (because: string) =>
      Number(
        new RegExp(`^scan_backends_http_connections_closed_total\\{because="${because}"\\} (\\d+)$`, 'm').exec(
          metrics,
        )?.[1] ?? 0,
      );
    expect(closed('per-client'), 'closed over a share').toBeGreaterThan(0);
    expect(closed('replaced'), 'replaced at the cap').toBeGreaterThan(0);
  }, 40_000);

  it('holds one address to its share: the excess of 600 silent connections is closed at once, and others are answered', async () => {
    const { url, port } = await startServe();
    const crowd = slowCrowd({ host: '127.0.181.1', port, from: ['127.0.181.30'], size: 600, mode: 'silent' });
    await new Promise((r) => setTimeout(r, 2000));
    const kept = crowd.heldLongerThan(1000);
    const healthz = await answersOf12(url, '/healthz', '127.0.181.4', 200);
    crowd.stop();
    expect(healthz, 'answers to /healthz of 12 from another address').toBe(12);
    expect(kept, 'connections of one address the server keeps (its share: 128 of 512)').toBeLessThanOrEqual(128);
  }, 40_000);

  it('closes a connection that drips its headers after the 5 s header timeout, not 30 s later', async () => {
    const { port } = await startServe();
    const crowd = slowCrowd({ host: '127.0.181.1', port, from: ['127.0.181.5'], size: 1, mode: 'drip' });
    const deadline = performance.now() + 10_000;
    while (crowd.lifetimesMs().length === 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const lifetimes = crowd.lifetimesMs();
    crowd.stop();
    expect(lifetimes.length, 'dripping connections the server closed within 10 s').toBe(1);
    const [lifetime] = lifetimes;
    expect(lifetime, 'lifetime of the dripping connection').toBeGreaterThanOrEqual(4900);
    expect(lifetime).toBeLessThan(7000);
  }, 20_000);
});
