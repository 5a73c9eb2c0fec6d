// The watcher's hysteresis against a real network fault: SYNs to a live ggml-rpc peer are
// dropped with nft in the namespace for one check, then for many, then let through again.
// Health rounds are counted from the watcher's snapshot, so nothing here depends on timing.
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';

import type { WatchEvent } from '../../lib/watch/types.js';
import { watchBackends } from '../../lib/watch/watcher.js';
import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { eventually } from '../helpers/net.js';
import { clearFirewall, enterIsolatedNamespace, setFirewall } from '../helpers/netns.js';

function dropSynsTo(host: string, port: number): void {
  setFirewall(`table inet scan_backends_test {
  chain input {
    type filter hook input priority 0;
    ip daddr ${host} tcp dport ${port} drop
  }
}`);
}

describe('watch in a namespace', () => {
  beforeAll(() => enterIsolatedNamespace());
  afterAll(() => clearFirewall());

  it('a dropped check is no event; failAfter dropped checks are exactly one down; back, one up after recoverAfter', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.45' });
    const watcher = watchBackends({
      sources: ['config'],
      configPath: configFile([`127.0.0.45:${peer.port}`]),
      intervalMs: 3_600_000,
      healthIntervalMs: 150,
      timeoutMs: 200,
      probeTimeoutMs: 500,
      failAfter: 3,
      recoverAfter: 2,
    });
    onTestFinished(() => watcher.close());
    const events: WatchEvent[] = [];
    watcher.on('event', (e) => events.push(e));
    await watcher.ready;
    const view = () => watcher.snapshot().backends[0];
    const rounds = () => watcher.snapshot().watcher.healthRounds;
    expect(view()).toMatchObject({ state: 'up', health: 'serving' });

    // One check (two at most: one may be in flight when the rule goes) fails; no event.
    dropSynsTo('127.0.0.45', peer.port);
    expect(await eventually(() => (view()?.failures ?? 0) >= 1, 5000)).toBe(true);
    clearFirewall();
    const peak = view()?.failures ?? 0;
    expect(await eventually(() => (view()?.successes ?? 0) >= 3, 5000)).toBe(true);
    expect(peak).toBeLessThan(3);
    expect(events.map((e) => e.type)).toEqual(['added']);

    // Dropped for many checks: exactly one down, when the third failed.
    dropSynsTo('127.0.0.45', peer.port);
    expect(await eventually(() => events.some((e) => e.type === 'down'), 5000)).toBe(true);
    const afterDown = rounds();
    expect(await eventually(() => rounds() >= afterDown + 4, 5000)).toBe(true);
    const down = events.filter((e) => e.type === 'down');
    expect(down).toHaveLength(1);
    expect(down[0]?.backend).toMatchObject({ state: 'down', failures: 3, flaps: 1 });
    expect(down[0]?.cause).toEqual({ check: 'health', saw: 'no answer within 200 ms' });
    expect(watcher.snapshot().rpc).toBe('');

    // Let through: one up, after exactly recoverAfter good checks.
    clearFirewall();
    expect(await eventually(() => events.some((e) => e.type === 'up'), 5000)).toBe(true);
    const afterUp = rounds();
    expect(await eventually(() => rounds() >= afterUp + 3, 5000)).toBe(true);
    const up = events.filter((e) => e.type === 'up');
    expect(up).toHaveLength(1);
    expect(up[0]?.backend).toMatchObject({ state: 'up', successes: 2, flaps: 1 });
    expect(events.map((e) => e.type)).toEqual(['added', 'down', 'up']);
    expect(watcher.snapshot().rpc).toBe(`127.0.0.45:${peer.port}`);
  });

  it('a new server on a scanned subnet is added within one resolve interval', async () => {
    const watcher = watchBackends({
      sources: ['scan'],
      subnet: '127.0.0.40-127.0.0.50',
      ports: 50052,
      intervalMs: 1000,
      healthIntervalMs: 500,
      timeoutMs: 200,
      probeTimeoutMs: 500,
    });
    onTestFinished(() => watcher.close());
    await watcher.ready;
    expect(watcher.snapshot().backends).toEqual([]);
    let cyclesAtAdded = -1;
    watcher.on('event', (e) => {
      if (e.type === 'added') cyclesAtAdded = watcher.snapshot().watcher.cycles;
    });
    await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.46', port: 50052 });
    // Counted once the server listens: a resolve already running may miss it; the next finds it.
    const cyclesThen = watcher.snapshot().watcher.cycles;
    expect(await eventually(() => cyclesAtAdded >= 0, 10_000)).toBe(true);
    expect(cyclesAtAdded).toBeLessThanOrEqual(cyclesThen + 1);
    expect(watcher.snapshot().backends).toMatchObject([
      { host: '127.0.0.46', port: 50052, state: 'up', sources: ['scan'], health: 'serving' },
    ]);
  });
});
