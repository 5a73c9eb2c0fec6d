// Two watchers on one real redis-server: the subnets split by lease (counted in the connects
// each peer received), events merged with their provenance, Redis killed and restarted under
// them, and one watcher killed with SIGKILL so the other takes its subnet over.
import { describe, expect, it } from 'vitest';

import type { WatchEvent } from '../../lib/watch/types.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { eventually } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';
import { scanWatcher } from '../helpers/fleet.js';
import { isLog, type LogLine, type WatchProcess } from '../helpers/watch.js';

const SUBNETS = ['127.0.1.70', '127.0.1.71'];

function watcher(url: string): WatchProcess {
  return scanWatcher(SUBNETS, url, ['--log-level', 'debug']);
}

/** The subnets a watcher said it scans, in its latest "scan leases" line. */
function scanning(w: WatchProcess): string[] | undefined {
  return (w.logs.filter((l) => l.msg === 'scan leases').at(-1)?.scanning as string[] | undefined) ?? undefined;
}

const split = (a: WatchProcess, b: WatchProcess) => () => {
  const [x, y] = [scanning(a), scanning(b)];
  return x?.length === 1 && y?.length === 1 && x[0] !== y[0];
};

describe('several watchers on one Redis', () => {
  it('split the subnets by lease, merge each other’s events, ride out a Redis restart, and take over from a killed one', async () => {
    const redis = await startRedis();
    const a = watcher(redis.url);
    const b = watcher(redis.url);

    // The split: each scans one subnet, a different one.
    expect(await eventually(split(a, b), 15_000)).toBe(true);
    const peers = await Promise.all(SUBNETS.map((host) => ggmlRpcPeer({ generation: '5.x', host, port: 50052 })));
    // Counted connects: over a window each peer gets one connect per resolve that scanned its
    // subnet, and the two watchers' resolves each scanned one subnet, never both.
    const [markA, markB, before] = [a.logs.length, b.logs.length, peers.map((p) => p.connections)];
    const connects = () => peers.map((p, i) => p.connections - (before[i] as number));
    expect(await eventually(() => connects().every((n) => n >= 4), 15_000)).toBe(true);
    const window = [...a.logs.slice(markA), ...b.logs.slice(markB)].filter((l) => l.msg === 'resolve done');
    const scanned = window.flatMap((l) => l.scanned as string[]);
    expect(window.every((l) => (l.scanned as string[]).length === 1)).toBe(true);
    // Each peer's connects are the resolves of its subnet, give or take one in flight.
    SUBNETS.forEach((subnet, i) => {
      const count = scanned.filter((s) => s === subnet).length;
      expect(Math.abs((connects()[i] as number) - count)).toBeLessThanOrEqual(2);
    });

    // Merged: each watcher follows both backends (they came after the split); the one it does
    // not scan came from the other, verified here, with the other's id as provenance.
    for (const [w, other] of [
      [a, b],
      [b, a],
    ] as const) {
      for (const host of SUBNETS)
        await w.waitFor(`added ${host}`, (l) => 'schema' in l && (l as WatchEvent).backend.host === host);
      const mine = scanning(w)?.[0];
      const fromPeer = w.events.find((e) => e.type === 'added' && e.backend.host !== mine) as WatchEvent;
      expect(fromPeer.cause.check).toBe('peer');
      const otherId = other.logs.find((l) => l.msg === 'watch started')?.watcher as string;
      expect(fromPeer.backend.reportedBy).toEqual([otherId]);
      expect(fromPeer.cause.saw).toMatch(
        new RegExp(`^watcher ${otherId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} reported it`),
      );
    }

    // Redis killed: each watcher says so once, keeps its view, and comes back with the server.
    const port = redis.port;
    await redis.kill();
    await a.waitFor('a: Redis lost', isLog(/^Redis lost/));
    await b.waitFor('b: Redis lost', isLog(/^Redis lost/));
    await new Promise((r) => setTimeout(r, 2000)); // several cycles without Redis
    for (const w of [a, b]) {
      expect(w.logs.filter((l) => /^Redis lost/.test(l.msg))).toHaveLength(1);
      expect(w.events.filter((e) => e.type === 'down' || e.type === 'removed')).toEqual([]);
    }
    const restarted = await startRedis('127.0.0.1', port);
    await a.waitFor('a: Redis back', isLog(/^Redis reachable again/), 20_000);
    await b.waitFor('b: Redis back', isLog(/^Redis reachable again/), 20_000);
    const client = restarted.client();
    expect(await eventually(split(a, b), 15_000)).toBe(true);
    expect((await client.keys('scan-backends:scanner:*')).length).toBe(2);

    // SIGKILL: a's registration and lease expire, b takes its subnet over.
    a.signal('SIGKILL');
    await a.exited;
    // Only lines after the kill: b may have held both for a moment while a reconnected.
    const mark = b.logs.length;
    const takeover = await b.waitFor<LogLine>(
      'b scanning both',
      (l) =>
        'msg' in l && b.logs.indexOf(l) >= mark && l.msg === 'scan leases' && (l.scanning as string[]).length === 2,
      20_000,
    );
    expect((takeover.scanning as string[]).sort()).toEqual([...SUBNETS].sort());
    // a's registration lives three heartbeats, about as long as its lease: it may outlast the
    // takeover by a moment, never by a heartbeat period more.
    const registered = async () => (await client.keys('scan-backends:scanner:*')).length === 1;
    expect(await eventually(registered, 5_000)).toBe(true);

    // b stops cleanly: it lets go of its leases and its registration.
    b.signal('SIGTERM');
    expect((await b.exited).code).toBe(0);
    expect(await client.keys('scan-backends:*')).toEqual(
      expect.not.arrayContaining([expect.stringMatching(/scanner:|lease:/)]),
    );
  }, 90_000);
});
