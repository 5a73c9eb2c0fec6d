// Trust between watchers sharing a Redis (issue 17 §2): with --fleet-key-file every message,
// registration and lease is signed, so watchers holding the key still split their subnets and
// merge each other's events, while an unsigned report and one signed with another key are
// ignored (never connected to) and counted; a key under 16 bytes is a usage error. And the
// shared Redis over TLS: `--redis rediss://…` with the CA in NODE_EXTRA_CA_CERTS.
import { describe, expect, it } from 'vitest';

import type { WatchEvent } from '../../lib/watch/types.js';
import { runCli, startCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import { forgedEvent, forgedMessage, CHANNEL, keyFile, keyFileWith, startTlsRedis } from '../helpers/fleet-attacker.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { eventually } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';
import { isEvent, isLog, startWatch, type LogLine, type WatchProcess } from '../helpers/watch.js';

// Two subnets of one address each, as in watch-fleet.test.ts, on addresses no other file uses.
const SUBNETS = ['127.0.13.70', '127.0.13.71'];
/** Where the attacker's target listens: in watcher A's scope (its -p), scanned by nobody. */
const TARGET_PORT = 50053;

/** Every watcher scans both subnets; `ports` differ so A's scope holds a port B never scans. */
function watcher(url: string, key: string, ports: string): WatchProcess {
  return startWatch([
    '--sources',
    'scan',
    ...SUBNETS.flatMap((s) => ['--subnet', s]),
    '-p',
    ports,
    '--redis',
    url,
    '--fleet-key-file',
    key,
    '--interval',
    '1s',
    // Health checks would connect too; the target's connection count must be the scans' alone.
    '--health-interval',
    '1h',
    '--timeout',
    '300',
    '--probe-timeout',
    '500',
    '--log-level',
    'debug',
  ]);
}

function scanning(w: WatchProcess): string[] | undefined {
  return (w.logs.filter((l) => l.msg === 'scan leases').at(-1)?.scanning as string[] | undefined) ?? undefined;
}

const idOf = (w: WatchProcess) => w.logs.find((l) => l.msg === 'watch started')?.watcher as string;

const ignoredFor = (w: WatchProcess, reason: RegExp) => (l: WatchEvent | LogLine) =>
  'msg' in l && l.msg === 'ignored a Redis value' && l.kind === 'event' && reason.test(String(l.reason));

describe('a fleet key', () => {
  it('watchers sharing it split subnets and merge events; an unsigned report and one under another key are ignored, never connected to, and counted', async () => {
    const redis = await startRedis();
    const key = keyFile(32);
    const a = watcher(redis.url, key, `50052,${TARGET_PORT}`);
    const b = watcher(redis.url, key, '50052');

    // The split, through signed leases and registrations.
    const split = () => {
      const [x, y] = [scanning(a), scanning(b)];
      return x?.length === 1 && y?.length === 1 && x[0] !== y[0];
    };
    expect(await eventually(split, 20_000)).toBe(true);

    // Merged: each follows both peers; the one it does not scan came from the other's signed
    // event, verified here, with the other's id as provenance.
    await Promise.all(SUBNETS.map((host) => ggmlRpcPeer({ generation: '5.x', host, port: 50052 })));
    for (const [w, other] of [
      [a, b],
      [b, a],
    ] as const) {
      for (const host of SUBNETS) await w.waitFor(`added ${host}`, isEvent('added', host), 20_000);
      const mine = scanning(w)?.[0];
      const fromPeer = w.events.find((e) => e.type === 'added' && e.backend.host !== mine) as WatchEvent;
      expect(fromPeer.cause.check).toBe('peer');
      expect(fromPeer.backend.reportedBy).toEqual([idOf(other)]);
    }

    // The target: a real ggml-rpc peer on B's subnet at a port only A's scope holds. A does not
    // scan that subnet (B holds its lease) and B does not scan that port: nothing of ours
    // connects to it unless a report is believed.
    const bSubnet = scanning(b)?.[0] as string;
    const target = await ggmlRpcPeer({ generation: '5.x', host: bSubnet, port: TARGET_PORT });
    const markA = a.logs.length;
    const client = redis.client();

    // Unsigned: repeated over several of A's intervals.
    for (let i = 0; i < 12; i++) {
      const event = forgedEvent(bSubnet, TARGET_PORT, i % 2 ? 'up' : 'added', i + 1);
      await client.publish(CHANNEL, forgedMessage(`unsigned-${i % 3}`, event));
      await new Promise((r) => setTimeout(r, 250));
    }
    const unsigned = await a.waitFor<LogLine>('A: ignored (unsigned)', ignoredFor(a, /^unsigned/), 10_000);
    expect(unsigned.ignored as number).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 1500));
    console.log(`figure: fleet-key: target connections after unsigned reports: ${target.connections}`);
    expect(target.connections).toBe(0);

    // Another key: a real watcher signing with it follows the target itself (its config) and
    // reports it; A must not believe that report, so the target sees C's connects and no more.
    const c = startWatch([
      '--sources',
      'config',
      '--config',
      configFile([`${bSubnet}:${TARGET_PORT}`]),
      '--redis',
      redis.url,
      '--fleet-key-file',
      keyFile(32),
      '--interval',
      '1h',
      '--health-interval',
      '1h',
      '--timeout',
      '300',
      '--probe-timeout',
      '500',
    ]);
    await c.waitFor('C: added the target', isEvent('added', bSubnet), 15_000);
    const byC = target.connections;
    const bad = await a.waitFor<LogLine>('A: ignored (bad signature)', ignoredFor(a, /^bad signature/), 10_000);
    expect(bad.ignored as number).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 2500)); // more than two of A's intervals
    console.log(`figure: fleet-key: target connections by C ${byC}, after C's report ${target.connections}`);
    expect(target.connections).toBe(byC);

    // Neither report was followed, and the design held: A never scanned B's subnet meanwhile.
    for (const w of [a, b]) {
      expect(w.events.filter((e) => e.backend.port === TARGET_PORT)).toEqual([]);
    }
    const aScanned = a.logs
      .slice(markA)
      .filter((l) => l.msg === 'resolve done')
      .flatMap((l) => l.scanned as string[]);
    expect(aScanned.length).toBeGreaterThan(0);
    expect(aScanned).not.toContain(bSubnet);
    expect(scanning(b)).toEqual([bSubnet]);
    const said = a.logs.slice(markA).filter((l) => l.msg === 'ignored a Redis value');
    console.log(
      `figure: fleet-key: A's "ignored a Redis value" lines: ${said.map((l) => `${String(l.reason)}×${String(l.ignored)}`).join('; ')}`,
    );
  }, 120_000);

  it('a key file under 16 bytes is a usage error naming the file, for watch and serve', async () => {
    const short = keyFileWith('fifteen-bytes!!');
    for (const command of ['watch', 'serve']) {
      // Bounded: a key that is not refused would leave a daemon running.
      const { child, done } = startCli([command, '--sources', 'config', '--fleet-key-file', short]);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const run = await done;
      clearTimeout(timer);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(short);
    }
    // Exactly 16 is enough: the watcher starts (and is stopped at once).
    const sixteen = keyFileWith('sixteen-bytes!!!');
    const w = startWatch(['--sources', 'config', '--config', configFile([]), '--fleet-key-file', sixteen]);
    await w.waitFor('started', isLog('watch started'), 10_000);
    w.signal('SIGTERM');
    expect((await w.exited).code).toBe(0);
  }, 30_000);
});

describe('rediss://', () => {
  it('a watcher registers on a TLS-only redis-server (CA from NODE_EXTRA_CA_CERTS) and reports no loss; without the CA it does not trust it', async () => {
    const redis = await startTlsRedis();
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.14.10' });
    const args = [
      '--sources',
      'config',
      '--config',
      configFile([`127.0.14.10:${peer.port}`]),
      '--redis',
      redis.url,
      '--interval',
      '1s',
      '--health-interval',
      '500ms',
      '--timeout',
      '300',
      '--probe-timeout',
      '500',
    ];
    const w = startWatch(args, { NODE_EXTRA_CA_CERTS: redis.caFile });
    await w.waitFor('added', isEvent('added', '127.0.14.10'), 15_000);
    const client = redis.client();
    const id = idOf(w);
    expect(await eventually(async () => (await client.exists(`scan-backends:scanner:${id}`)) === 1, 10_000)).toBe(true);
    const info = JSON.parse((await client.get(`scan-backends:scanner:${id}`)) ?? '{}') as { pid?: number };
    expect(info.pid).toBe(w.pid);
    // Several intervals and heartbeats: no loss said, nothing down.
    await new Promise((r) => setTimeout(r, 3000));
    expect(w.logs.filter((l) => /^Redis lost|Redis unavailable/.test(l.msg))).toEqual([]);
    expect(w.logs.filter((l) => l.msg === 'resolve warning' && /Redis/.test(String(l.warning)))).toEqual([]);
    expect(w.events.filter((e) => e.type !== 'added')).toEqual([]);
    // The resolver's registry over the same TLS: the watcher's write, and resolve's read of it.
    const entry = `scan-backends:backend:127.0.14.10:${peer.port}`;
    expect(await eventually(async () => (await client.exists(entry)) === 1, 5000)).toBe(true);
    const resolved = await runCli(['resolve', '--sources', 'redis', '--redis', redis.url, '--format', 'rpc'], {
      env: { NODE_EXTRA_CA_CERTS: redis.caFile },
    });
    expect({ code: resolved.code, stdout: resolved.stdout }).toEqual({ code: 0, stdout: `127.0.14.10:${peer.port}\n` });

    // The certificate is checked: without the CA the same URL is a Redis it cannot use.
    const untrusting = startWatch(args, { NODE_EXTRA_CA_CERTS: '' });
    await untrusting.waitFor('Redis lost (certificate)', isLog(/^Redis lost/), 15_000);
    const lost = untrusting.logs.find((l) => /^Redis lost/.test(l.msg)) as LogLine;
    console.log(`figure: rediss: an untrusted certificate says: ${String(lost.error)}`);
    expect(String(lost.error)).toMatch(/certificate|self.signed|verify/i);
    expect(await client.exists(`scan-backends:scanner:${idOf(untrusting)}`)).toBe(0);
  }, 60_000);
});
