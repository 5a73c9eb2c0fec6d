import { describe, expect, it } from 'vitest';

import { parseDuration } from '../../lib/cli/flags.js';
import { humanEvent } from '../../lib/cli/watch-command.js';
import { humanLine } from '../../lib/daemon/log.js';
import { splitCommand } from '../../lib/daemon/on-change.js';
import { startWatchdog, SystemdNotifier, watchdogIntervalMs } from '../../lib/daemon/systemd.js';
import type { Backend } from '../../lib/resolver/types.js';
import { CoordinatorStatusKeeper } from '../../lib/watch/coordinator-status.js';
import { EventFeed } from '../../lib/watch/event-feed.js';
import { EventRing } from '../../lib/watch/event-ring.js';
import { observe, track, type Observation, type Tracked } from '../../lib/watch/tracker.js';
import type { FeedEvent, WatchedBackend, WatchEvent } from '../../lib/watch/types.js';

const policy = { failAfter: 3, recoverAfter: 2, freeMemoryFraction: 0.1 };
const GiB = 1024 ** 3;

function serving(freeBytes = 8 * GiB, protocol = '5.1.0'): Omit<Backend, 'sources'> {
  return {
    host: '10.0.0.7',
    port: 50052,
    verified: true,
    health: 'serving',
    evidence: 'hello',
    rpc: {
      protocol,
      usableBy: '>=5.1.0 <6.0.0',
      legacyHello: false,
      devices: [{ index: 0, freeBytes, totalBytes: 16 * GiB }],
    },
  };
}

function tracked(): Tracked {
  const now = new Date(0).toISOString();
  const view: WatchedBackend = {
    state: 'up',
    sources: ['config'],
    addedAt: now,
    since: now,
    failures: 0,
    successes: 1,
    flaps: 0,
    ...serving(),
  };
  return track(view);
}

const fail: Observation = { check: 'health', saw: 'closed (connection refused)' };
const good = (alive = serving()): Observation => ({ check: 'health', saw: 'answered HELLO', alive });
const run = (t: Tracked, observations: Observation[]) =>
  observations.map((o) => observe(t, o, policy, new Date())?.type ?? null);

describe('hysteresis', () => {
  it('one dropped check is no event; failAfter in a row is one down; recoverAfter brings it up', () => {
    const t = tracked();
    expect(run(t, [fail, good(), fail, fail, good()])).toEqual([null, null, null, null, null]);
    expect(t.view.state).toBe('up');
    expect(run(t, [fail, fail, fail, fail, fail])).toEqual([null, null, 'down', null, null]);
    expect(t.view).toMatchObject({ state: 'down', flaps: 1, failures: 5 });
    expect(run(t, [good(), fail, good(), good(), good()])).toEqual([null, null, null, 'up', null]);
    expect(t.view).toMatchObject({ state: 'up', flaps: 1, successes: 3 });
    expect(t.view.lastCheck).toMatchObject({ check: 'health', ok: true, saw: 'answered HELLO' });
  });

  it('busy is alive, and a change of health is a change', () => {
    const t = tracked();
    const busy: Observation = {
      check: 'witness',
      saw: 'busy: pid 7 holds a connection to it',
      alive: { host: '10.0.0.7', port: 50052, verified: true, health: 'busy', evidence: 'held' },
    };
    const [first, second] = [observe(t, busy, policy, new Date()), observe(t, busy, policy, new Date())];
    expect(first).toEqual({ type: 'changed', changes: [{ field: 'health', from: 'serving', to: 'busy' }] });
    expect(second).toBeUndefined();
    // What a held server cannot say (its HELLO details) is kept from the last HELLO.
    expect(t.view).toMatchObject({ state: 'up', evidence: 'held', rpc: { protocol: '5.1.0' } });
    expect(t.view.failures).toBe(0);
  });

  it('free memory: a move past 10% of the total is a change; a slow drift adds up to one', () => {
    const t = tracked();
    const drift = [7.5, 7.0, 6.5].map((g) => observe(t, good(serving(g * GiB)), policy, new Date()));
    // 8 → 7.5 → 7.0 (-1 GiB, under 1.6) → 6.5 (-1.5 GiB) : still under; the baseline stays 8 GiB.
    expect(drift).toEqual([undefined, undefined, undefined]);
    expect(t.view.rpc?.devices[0]?.freeBytes).toBe(6.5 * GiB);
    const moved = observe(t, good(serving(6 * GiB)), policy, new Date());
    expect(moved).toEqual({
      type: 'changed',
      changes: [{ field: 'freeBytes', device: 0, from: 8 * GiB, to: 6 * GiB }],
    });
    expect(observe(t, good(serving(6.2 * GiB)), policy, new Date())).toBeUndefined();
  });

  it('a new protocol or device count is a change', () => {
    const t = tracked();
    expect(observe(t, good(serving(8 * GiB, '5.2.0')), policy, new Date())).toEqual({
      type: 'changed',
      changes: [{ field: 'protocol', from: '5.1.0', to: '5.2.0' }],
    });
    const two = serving(8 * GiB, '5.2.0');
    two.rpc?.devices.push({ index: 1, freeBytes: GiB, totalBytes: GiB });
    expect(observe(t, good(two), policy, new Date())).toMatchObject({
      changes: [{ field: 'devices', from: 1, to: 2 }],
    });
  });
});

describe('event ring', () => {
  const event = (id: number) => ({ id }) as WatchEvent;

  it('resumes after an id, says when events are gone, gives nothing for a future id', () => {
    const ring = new EventRing(3);
    expect(ring.since(0)).toEqual([]);
    for (let id = 1; id <= 5; id++) ring.push(event(id));
    expect(ring.lastId).toBe(5);
    expect(ring.since(2)?.map((e) => e.id)).toEqual([3, 4, 5]);
    expect(ring.since(4)?.map((e) => e.id)).toEqual([5]);
    expect(ring.since(5)).toEqual([]);
    expect(ring.since(99)).toEqual([]);
    expect(ring.since(1)).toBeNull();
    expect(ring.since(0)).toBeNull();
  });

  it("numbers the backends' and a coordinator's events from one count, all in the ring, only the backends' to iterators", async () => {
    const delivered: FeedEvent[] = [];
    const feed = new EventFeed(10, (e) => delivered.push(e));
    const iterator = feed.iterator();
    const cause = { check: 'health' as const, saw: 'answered HELLO' };
    feed.publish('added', tracked().view, cause);
    const ready = feed.coordinator('coordinator-ready', { pid: 7, msToReady: 5 });
    feed.publish('down', tracked().view, cause);
    expect(ready.id).toBe(2);
    expect(delivered.map((e) => [e.id, e.type])).toEqual([
      [1, 'added'],
      [2, 'coordinator-ready'],
      [3, 'down'],
    ]);
    expect(feed.since(0)).toEqual(delivered);
    expect(feed.since(1)?.map((e) => e.id)).toEqual([2, 3]);
    feed.end();
    const seen: number[] = [];
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) seen.push(r.value.id);
    expect(seen).toEqual([1, 3]);
  });
});

describe("a coordinator's status", () => {
  it('follows its events and its supervisor: pid only while a child runs, restarts counted, the last reason kept', () => {
    const keeper = new CoordinatorStatusKeeper();
    expect(keeper.view).toBeUndefined();
    const feed = new EventFeed(10, (e) => 'coordinator' in e && keeper.apply(e));
    keeper.set('waiting', '1 of 2 servers usable');
    expect(keeper.view).toMatchObject({ state: 'waiting', restarts: 0, reason: '1 of 2 servers usable' });
    feed.coordinator('coordinator-starting', { pid: 9, servers: ['a:1', 'b:2'] });
    feed.coordinator('coordinator-ready', { pid: 9, servers: ['a:1', 'b:2'], msToReady: 40 });
    const ready = keeper.view;
    expect(ready).toMatchObject({ state: 'ready', pid: 9, servers: ['a:1', 'b:2'], lastMsToReady: 40 });
    // Why it waited is over once it starts.
    expect(ready?.reason).toBeUndefined();
    feed.coordinator('coordinator-exited', { pid: 9, code: null, signal: 'SIGABRT' });
    expect(keeper.view).toMatchObject({ state: 'restarting', reason: 'exited (signal SIGABRT)' });
    expect(keeper.view?.pid).toBeUndefined();
    feed.coordinator('coordinator-restarting', { servers: ['a:1'], reason: 'lost b:2' });
    feed.coordinator('coordinator-starting', { pid: 10, servers: ['a:1'] });
    expect(keeper.view).toMatchObject({
      state: 'starting',
      pid: 10,
      servers: ['a:1'],
      restarts: 1,
      lastMsToReady: 40,
      reason: 'lost b:2',
    });
    feed.coordinator('coordinator-crash-loop', { reason: 'gave up', failures: 5 });
    expect(keeper.view).toMatchObject({ state: 'crash-loop', reason: 'gave up', restarts: 1 });
    expect(keeper.view?.pid).toBeUndefined();
  });
});

describe('daemon pieces', () => {
  it('durations take a unit; a bare number is milliseconds; out of range names the flag', () => {
    expect(parseDuration('--interval', '500ms', 'intervalMs')).toBe(500);
    expect(parseDuration('--interval', '5s', 'intervalMs')).toBe(5000);
    expect(parseDuration('--interval', '10m', 'intervalMs')).toBe(600_000);
    expect(parseDuration('--interval', '1h', 'intervalMs')).toBe(3_600_000);
    expect(parseDuration('--interval', '250', 'intervalMs')).toBe(250);
    expect(parseDuration('--interval', undefined, 'intervalMs')).toBeUndefined();
    expect(() => parseDuration('--interval', '5 min', 'intervalMs')).toThrow(/--interval: expected a duration/);
    expect(() => parseDuration('--interval', '-5s', 'intervalMs')).toThrow(/--interval/);
    expect(() => parseDuration('--interval', '10ms', 'intervalMs')).toThrow(
      /--interval: must be 100ms\.\.1d, got 10ms/,
    );
    expect(() => parseDuration('--health-interval', '2d', 'healthIntervalMs')).toThrow(/--health-interval/);
  });

  it('a command line splits like a shell would, with nothing expanded', () => {
    expect(splitCommand('systemctl restart llama')).toEqual(['systemctl', 'restart', 'llama']);
    expect(splitCommand(`a "b c" 'd $HOME' e\\ f ""`)).toEqual(['a', 'b c', 'd $HOME', 'e f', '']);
    expect(splitCommand('  x   "y\\"z"  ')).toEqual(['x', 'y"z']);
    expect(splitCommand('echo $(rm -rf /); ls')).toEqual(['echo', '$(rm', '-rf', '/);', 'ls']);
    expect(() => splitCommand('a "b')).toThrow(/unclosed " quote/);
  });

  // eslint-disable-next-line no-control-regex
  const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

  it('log and event lines for a terminal carry no control characters from a peer', () => {
    const line = humanLine(
      JSON.stringify({ level: 50, time: 0, pid: 1, msg: 'config: bad line', line: 'x\u001b]0;owned\u0007' }),
    );
    expect(line).toMatch(/ error config: bad line line=x/);
    expect(line.slice(0, -1)).not.toMatch(CONTROL);
    const event = {
      schema: 1,
      id: 7,
      time: new Date(0).toISOString(),
      type: 'down',
      backend: { host: '10.0.0.7', port: 50052, sources: ['config'] },
      cause: { check: 'health', saw: 'not a ggml-rpc server: "\u001b[2J"' },
    } as unknown as WatchEvent;
    const text = humanEvent(event);
    expect(text).toMatch(/#7 down\s+10\.0\.0\.7:50052 \(config\): not a ggml-rpc server/);
    expect(text.slice(0, -1)).not.toMatch(CONTROL);
  });

  it('the watchdog interval is half of WATCHDOG_USEC, for this process only', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '20000000' })).toBe(10_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: String(process.pid) })).toBe(10_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '1' })).toBeUndefined();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: 'x' })).toBeUndefined();
    expect(watchdogIntervalMs({})).toBeUndefined();
  });

  it('the watchdog pings only while the loop turns: a step busy for two intervals stops it', async () => {
    const sent: string[] = [];
    const notifier = new SystemdNotifier(
      '/unused',
      (_path, message) => (sent.push(message), 0),
      () => {},
    );
    const env = { WATCHDOG_USEC: '40000' }; // a ping every 20 ms
    let busyMs = 0;
    const stuck: number[] = [];
    const timer = startWatchdog(
      notifier,
      () => busyMs,
      (ms) => stuck.push(ms),
      env,
    );
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(sent.length).toBeGreaterThan(0);
      expect(new Set(sent)).toEqual(new Set(['WATCHDOG=1']));
      expect(stuck).toEqual([]);
      busyMs = 40; // two intervals: stuck
      const before = sent.length;
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(sent.length).toBe(before);
      expect(stuck.length).toBeGreaterThan(0);
    } finally {
      clearInterval(timer);
    }
    expect(
      startWatchdog(
        undefined,
        () => 0,
        () => {},
        env,
      ),
    ).toBeUndefined();
    expect(
      startWatchdog(
        notifier,
        () => 0,
        () => {},
        {},
      ),
    ).toBeUndefined();
  });
});
