// A hostile writer on the watchers' Redis (issue 17 §2), inside the namespace: the addresses
// it names are real here (10.0.0.1 and 169.254.169.254 on lo, each with a listener), and an
// nft counter on the output hook counts every SYN the namespace sends to them, so "never
// connected to" is a packet count of 0, not an absence of log lines.
//
// A. A watcher of `--sources config` follows only what it was asked to: forged `added`/`up`
//    reports are dropped unverified, counted, and never reach --on-change; with the redis
//    source a reported ggml-rpc peer is in scope (verified, followed), a link-local one never.
// B. A flood of forged reports (~5,000 a second, random origins and addresses) neither
//    delays a real backend's `down` nor makes the watcher connect more than its budget
//    (8 reports a resolve interval from one origin, 32 in all), log without bound or swell.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';

import type { WatchEvent } from '../../lib/watch/types.js';
import { configFile } from '../helpers/config.js';
import { addToLoopback, countSyns, flood, publishRepeatedly, readSyns, rssKiB } from '../helpers/fleet-attacker.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { eventually } from '../helpers/net.js';
import { clearFirewall, enterIsolatedNamespace } from '../helpers/netns.js';
import { startRedis } from '../helpers/redis.js';
import { UNDER_SANITIZER } from '../helpers/tools.js';
import { isEvent, isLog, startWatch, type LogLine, type WatchProcess } from '../helpers/watch.js';

const CONFIGURED = '127.0.0.45';
const UNASKED_PEER = '127.0.0.46';
const PRIVATE_SSH = '10.0.0.1';
const METADATA = '169.254.169.254';
const FORGED = [
  { host: PRIVATE_SSH, port: 22 },
  { host: METADATA, port: 80 },
  { host: UNASKED_PEER, port: 50052 },
];
const FORGED_HOSTS = FORGED.map((t) => t.host);

/** A listener that accepts and closes, counting what it accepted; closed after the test. */
async function countingListener(host: string, port: number): Promise<{ accepted: () => number }> {
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { accepted: () => accepted };
}

/** The lists --on-change was handed (one line a run), read from the file the command appends to. */
function onChangeRecorder(): { args: string[]; lists: () => string[] } {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-injection-')), 'lists');
  return {
    args: ['--settle', '200ms', '--on-change-shell', '--on-change', `echo "$SCAN_BACKENDS_RPC" >> '${file}'`],
    lists: () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []),
  };
}

const ignoredLines = (w: WatchProcess, after = 0) =>
  w.logs.slice(after).filter((l) => l.msg === 'ignored a Redis value' && l.kind === 'event');

const aboutForged = (w: WatchProcess) => w.events.filter((e) => FORGED_HOSTS.includes(e.backend.host));

describe('forged watch events on the shared Redis, in a namespace', () => {
  beforeAll(() => enterIsolatedNamespace());
  afterAll(() => clearFirewall());

  /** Redis, the configured peer, the three forged targets (listening for real) and their counters. */
  async function scene(extraConfigLines: string[] = []) {
    for (const address of [PRIVATE_SSH, METADATA]) addToLoopback(address);
    const redis = await startRedis('127.0.0.1');
    const configured = await ggmlRpcPeer({ generation: '5.x', host: CONFIGURED, port: 50052 });
    const unasked = await ggmlRpcPeer({ generation: '5.x', host: UNASKED_PEER, port: 50052 });
    const ssh = await countingListener(PRIVATE_SSH, 22);
    const metadata = await countingListener(METADATA, 80);
    countSyns({
      ssh: `ip daddr ${PRIVATE_SSH} tcp dport 22`,
      metadata: `ip daddr ${METADATA} tcp dport 80`,
      unasked: `ip daddr ${UNASKED_PEER} tcp dport 50052`,
    });
    onTestFinished(() => clearFirewall());
    const config = configFile([`${CONFIGURED}:50052`, ...extraConfigLines]);
    return { redis, configured, unasked, ssh, metadata, config };
  }

  function watcher(sources: string, redisUrl: string, config: string, onChange: string[]): WatchProcess {
    return startWatch([
      '--sources',
      sources,
      '--redis',
      redisUrl,
      '--config',
      config,
      '--interval',
      '1s',
      '--health-interval',
      '500ms',
      '--timeout',
      '300',
      '--probe-timeout',
      '500',
      ...onChange,
    ]);
  }

  it('--sources config: reports of a private host, the metadata address and an unasked peer get 0 SYNs, no event, no on-change; dropped and counted', async () => {
    const { redis, unasked, ssh, metadata, config } = await scene();
    const recorder = onChangeRecorder();
    const w = watcher('config', redis.url, config, recorder.args);
    await w.waitFor('added (configured)', isEvent('added', CONFIGURED), 15_000);
    await w.waitFor('the first on-change', isLog('on-change: done'), 10_000);
    expect(readSyns()).toEqual({ ssh: 0, metadata: 0, unasked: 0 });

    // Several resolve intervals of forged reports (1 s each), then two more for any late check.
    const started = performance.now();
    const sent = await publishRepeatedly(redis.client(), 'watcher-forged', FORGED, 5000);
    await new Promise((r) => setTimeout(r, 2500));
    const windowS = (performance.now() - started) / 1000;
    const syns = readSyns();
    console.log(
      `figure: fleet-injection config-only: forged messages ${sent} over ${windowS.toFixed(1)} s; SYNs ssh=${syns.ssh} metadata=${syns.metadata} unasked-peer=${syns.unasked}; accepted ssh=${ssh.accepted()} metadata=${metadata.accepted()} unasked-peer=${unasked.connections}`,
    );
    expect(syns).toEqual({ ssh: 0, metadata: 0, unasked: 0 });
    expect(unasked.connections).toBe(0);
    expect(aboutForged(w)).toEqual([]);
    for (const list of recorder.lists()) {
      for (const host of FORGED_HOSTS) expect(list).not.toContain(host);
    }
    expect(recorder.lists()).toEqual([`${CONFIGURED}:50052`]);

    // Dropped and counted, said at most once per kind per 10 s.
    const line = await w.waitFor<LogLine>(
      'an out-of-scope "ignored a Redis value"',
      (l) => 'msg' in l && l.msg === 'ignored a Redis value' && /^outside this watcher.s scope/.test(String(l.reason)),
      5000,
    );
    expect(line).toMatchObject({ kind: 'event', ignored: expect.any(Number) });
    expect(line.ignored as number).toBeGreaterThanOrEqual(1);
    const said = ignoredLines(w);
    console.log(
      `figure: fleet-injection config-only: "ignored a Redis value" lines ${said.length} in ${windowS.toFixed(1)} s`,
    );
    expect(said.length).toBeLessThanOrEqual(Math.ceil(windowS / 10) + 1);

    // The configured backend is unaffected.
    expect(w.events.filter((e) => e.backend.host === CONFIGURED).map((e) => e.type)).toEqual(['added']);
  }, 60_000);

  it('--sources config,redis: the reported ggml-rpc peer is in scope (verified, followed, handed on); the metadata address, reported and in the config file too, still gets 0 SYNs', async () => {
    const { redis, unasked, ssh, metadata, config } = await scene([`${METADATA}:80`]);
    const recorder = onChangeRecorder();
    const w = watcher('config,redis', redis.url, config, recorder.args);
    await w.waitFor('added (configured)', isEvent('added', CONFIGURED), 15_000);
    await w.waitFor('the first on-change', isLog('on-change: done'), 10_000);

    const started = performance.now();
    const sent = await publishRepeatedly(redis.client(), 'watcher-reporting', FORGED, 4000);
    const added = await w.waitFor<WatchEvent>('added (reported peer)', isEvent('added', UNASKED_PEER), 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    const windowS = (performance.now() - started) / 1000;
    const syns = readSyns();
    console.log(
      `figure: fleet-injection config,redis: forged messages ${sent} over ${windowS.toFixed(1)} s; SYNs ssh=${syns.ssh} metadata=${syns.metadata} unasked-peer=${syns.unasked}; accepted ssh=${ssh.accepted()} metadata=${metadata.accepted()} unasked-peer=${unasked.connections}`,
    );

    // In scope: checked here as any candidate is, then followed with its provenance.
    expect(added.cause.check).toBe('peer');
    expect(added.backend).toMatchObject({ verified: true, state: 'up', reportedBy: ['watcher-reporting'] });
    expect(syns.unasked).toBeGreaterThan(0);
    const both = [`${CONFIGURED}:50052`, `${UNASKED_PEER}:50052`].join(',');
    expect(await eventually(() => recorder.lists().includes(both), 5000)).toBe(true);

    // Link-local: never a candidate without --allow-link-local, whatever the source (the config
    // file names it too).
    expect(syns.metadata).toBe(0);
    expect(metadata.accepted()).toBe(0);
    // The SSH port may be checked (the redis source takes anything private) but is no backend.
    expect(w.events.filter((e) => e.backend.host === PRIVATE_SSH || e.backend.host === METADATA)).toEqual([]);
    for (const list of recorder.lists()) {
      expect(list).not.toContain(METADATA);
      expect(list).not.toContain(PRIVATE_SSH);
    }
  }, 60_000);

  it('a flood of forged reports (~5,000/s, random origins) neither delays a real down nor buys more than the budget of connects', async () => {
    const INTERVAL_S = 10;
    const redis = await startRedis('127.0.0.1');
    let peer = await ggmlRpcPeer({ generation: '5.x', host: CONFIGURED, port: 50052 });
    countSyns({
      flood: 'ip daddr 127.0.2.0/23 tcp dport 50052',
      oneOrigin: 'ip daddr 127.0.4.0/24 tcp dport 50052',
    });
    onTestFinished(() => clearFirewall());
    const w = startWatch([
      '--sources',
      'config,redis',
      '--redis',
      redis.url,
      '--config',
      configFile([`${CONFIGURED}:50052`]),
      '--interval',
      `${INTERVAL_S}s`,
      '--health-interval',
      '500ms',
      '--fail-after',
      '3',
      '--recover-after',
      '2',
      '--timeout',
      '300',
      '--probe-timeout',
      '500',
    ]);
    await w.waitFor('added', isEvent('added', CONFIGURED), 15_000);
    const idleRss = rssKiB(w.pid);

    // Baseline: the same kill without a flood.
    await new Promise((r) => setTimeout(r, 1000));
    let killedAt = performance.now();
    await peer.close();
    const baselineDown = await w.waitFor<WatchEvent>('baseline down', isEvent('down', CONFIGURED), 15_000);
    const baselineMs = performance.now() - killedAt;
    peer = await ggmlRpcPeer({ generation: '5.x', host: CONFIGURED, port: 50052 });
    const up = await w.waitFor<WatchEvent>('up again', isEvent('up', CONFIGURED, baselineDown.id), 15_000);

    // One origin alone gets 8 a resolve interval, not the whole 32 (first, while the budget is whole).
    const beforeOne = readSyns().oneOrigin ?? 0;
    const oneStarted = performance.now();
    await flood(redis.client(), {
      perSecond: 2000,
      forMs: 3000,
      port: 50052,
      origin: 'one-noisy-watcher',
      pick: () => `127.0.4.${1 + Math.floor(Math.random() * 254)}`,
    });
    await new Promise((r) => setTimeout(r, 2000));
    const oneWindowS = (performance.now() - oneStarted) / 1000;
    const oneSyns = (readSyns().oneOrigin ?? 0) - beforeOne;
    const oneBudget = 8 * (Math.ceil(oneWindowS / INTERVAL_S) + 1);
    console.log(
      `figure: fleet-flood: one origin: SYNs ${oneSyns} in ${oneWindowS.toFixed(1)} s (budget ${oneBudget}: 8 a ${INTERVAL_S} s interval)`,
    );
    expect(oneSyns).toBeGreaterThan(0); // reports from one watcher are still heard
    expect(oneSyns).toBeLessThanOrEqual(oneBudget);

    // The flood: 9 s of forged reports naming 512 addresses where nothing listens (each check
    // a refused connect), from random origins; the real peer is killed 1.5 s in.
    const client = redis.client();
    const before = readSyns();
    const mark = w.logs.length;
    let peakRss = rssKiB(w.pid);
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssKiB(w.pid))), 250);
    onTestFinished(() => clearInterval(sampler));
    const floodStarted = performance.now();
    const flooding = flood(client, {
      perSecond: 5000,
      forMs: 9000,
      port: 50052,
      pick: () => {
        const n = Math.floor(Math.random() * 512);
        return `127.0.${2 + (n >> 8)}.${n & 255}`;
      },
    });
    await new Promise((r) => setTimeout(r, 1500));
    killedAt = performance.now();
    await peer.close();
    let downMs: number | undefined;
    const down = w
      .waitFor<WatchEvent>('down under the flood', isEvent('down', CONFIGURED, up.id), 30_000)
      .then(() => (downMs = performance.now() - killedAt))
      .catch(() => undefined);
    const { sent, elapsedMs } = await flooding;
    // Two seconds more for a check already granted, then count.
    await new Promise((r) => setTimeout(r, 2000));
    const floodWindowS = (performance.now() - floodStarted) / 1000;
    const floodSyns = (readSyns().flood ?? 0) - (before.flood ?? 0);
    const during = w.logs.slice(mark);
    const chatter = during.filter((l) => /^ignored a Redis value$|does not verify/.test(l.msg)).length;
    await down;
    clearInterval(sampler);
    console.log(
      `figure: fleet-flood: ${sent} forged events in ${(elapsedMs / 1000).toFixed(1)} s (${Math.round(sent / (elapsedMs / 1000))}/s)`,
    );
    console.log(
      `figure: fleet-flood: down after kill ${downMs === undefined ? 'none within 30 s' : `${Math.round(downMs)} ms`} under the flood; baseline ${Math.round(baselineMs)} ms`,
    );
    console.log(
      `figure: fleet-flood: watcher log lines during the flood ${during.length} (ignored/does-not-verify ${chatter}); RSS idle ${Math.round(idleRss / 1024)} MiB, peak ${Math.round(peakRss / 1024)} MiB`,
    );
    const budget = 32 * (Math.ceil(floodWindowS / INTERVAL_S) + 1);
    console.log(
      `figure: fleet-flood: SYNs to the flooded addresses ${floodSyns} in ${floodWindowS.toFixed(1)} s (budget ${budget}: 32 a ${INTERVAL_S} s interval)`,
    );

    expect(baselineMs).toBeLessThan(6000);
    expect(downMs).toBeDefined();
    expect(downMs as number).toBeLessThanOrEqual(6000);
    expect(during.length).toBeLessThan(100);
    // About 18 MiB of growth here (69 -> 87 MiB).
    if (!UNDER_SANITIZER) expect(peakRss - idleRss).toBeLessThan(100 * 1024);
    expect(floodSyns).toBeLessThanOrEqual(budget);
  }, 150_000);
});
