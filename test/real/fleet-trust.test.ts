// Trust between watchers sharing a Redis (issue 17 §2): with --fleet-key-file every message,
// registration and lease is signed, so watchers holding the key still split their subnets and
// merge each other's events, while an unsigned report and one signed with another key are
// ignored (never connected to) and counted; a key under 16 bytes is a usage error. And the
// shared Redis over TLS: `--redis rediss://…` with the CA in NODE_EXTRA_CA_CERTS.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';

import type { WatchEvent } from '../../lib/watch/types.js';
import { runCli, startCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import {
  CHANNEL,
  PREFIX,
  forgedEvent,
  forgedMessage,
  keyFile,
  keyFileWith,
  signedMessage,
  startTlsRedis,
} from '../helpers/fleet-attacker.js';
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

/**
 * Publishes `message(i)` every 250 ms until `w` logs "ignored a Redis value" for an event
 * with a reason matching `reason` (a watcher says so at most once per 10 s), at most 25 s.
 */
async function publishUntilSaid(
  client: Redis,
  w: WatchProcess,
  reason: RegExp,
  message: (i: number) => string,
): Promise<LogLine> {
  const mark = w.logs.length;
  const said = () => w.logs.slice(mark).find(ignoredFor(w, reason) as (l: LogLine) => boolean);
  for (let i = 0; i < 100 && !said(); i++) {
    await client.publish(CHANNEL, message(i));
    await new Promise((r) => setTimeout(r, 250));
  }
  const line = said();
  if (!line)
    throw new Error(
      `no "ignored a Redis value" (${reason}) within 25 s; logs: ${w.logs
        .slice(mark)
        .map((l) => `${l.msg} ${String(l.reason ?? '')}`)
        .join(' | ')}`,
    );
  return line;
}

describe('a fleet key', () => {
  it('watchers sharing it split subnets and merge events; an unsigned report and one under another key are ignored, never connected to, and counted', async () => {
    const redis = await startRedis();
    const key = keyFile(32);
    const a = watcher(redis.url, key.file, `50052,${TARGET_PORT}`);
    const b = watcher(redis.url, key.file, '50052');

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

    // Unsigned: repeated over several of A's intervals, until A says it ignored one.
    const unsigned = await publishUntilSaid(client, a, /^unsigned/, (i) =>
      forgedMessage(`unsigned-${i % 3}`, forgedEvent(bSubnet, TARGET_PORT, i % 2 ? 'up' : 'added', i + 1)),
    );
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
      keyFile(32).file,
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
    // C says it once; the same, signed with another key by the test, until A says it ignored one
    // (A says so at most once per 10 s).
    const otherKey = keyFile(32).key;
    const bad = await publishUntilSaid(client, a, /^bad signature/, (i) =>
      signedMessage(otherKey, `other-key-${i % 3}`, forgedEvent(bSubnet, TARGET_PORT, 'added', i + 1)),
    );
    expect(bad.ignored as number).toBeGreaterThanOrEqual(2);
    await new Promise((r) => setTimeout(r, 1500));
    console.log(
      `figure: fleet-key: target connections by C ${byC}, after the other key's reports ${target.connections}`,
    );
    expect(target.connections).toBe(byC);

    // Signed with the key but two minutes old: a replay, ignored as stale.
    const stale = await publishUntilSaid(client, a, /^stale/, (i) =>
      signedMessage(
        key.key,
        'replayed-watcher',
        forgedEvent(bSubnet, TARGET_PORT, 'added', i + 1),
        Date.now() - 120_000,
      ),
    );
    expect(stale.ignored as number).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 1500));
    console.log(`figure: fleet-key: target connections after stale reports ${target.connections}`);
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

    // The control: the same report, fresh and signed with the key, is believed (verified here,
    // followed with its provenance). So what stopped the others was their signature alone.
    const trusted = forgedEvent(bSubnet, TARGET_PORT, 'added', 200);
    await client.publish(CHANNEL, signedMessage(key.key, 'key-holder', trusted));
    const added = await a.waitFor<WatchEvent>(
      'A: added (the signed report)',
      (l) => 'schema' in l && l.type === 'added' && l.backend.port === TARGET_PORT,
      10_000,
    );
    expect(added).toMatchObject({ cause: { check: 'peer' }, backend: { host: bSubnet, reportedBy: ['key-holder'] } });
    expect(target.connections).toBeGreaterThan(byC);
  }, 120_000);

  it('1,100 junk scanner keys let no watcher take the other’s lease: each subnet scanned by one, steadily', async () => {
    const redis = await startRedis();
    const client = redis.client();
    // Unsigned, well-shaped and expiring: more than any cap on the keys a watcher keeps.
    const junk = client.pipeline();
    for (let i = 0; i < 1100; i++) {
      const id = `junk-${i}`;
      const info = { id, host: 'x', pid: 1, version: '0', startedAt: new Date().toISOString(), sources: ['scan'] };
      junk.set(
        `${PREFIX}scanner:${id}`,
        JSON.stringify({ ...info, heartbeatAt: new Date().toISOString() }),
        'PX',
        120_000,
      );
    }
    await junk.exec();
    const key = keyFile(32);
    const a = watcher(redis.url, key.file, '50052');
    const b = watcher(redis.url, key.file, '50052');
    // Past the 1,024 keys a watcher examines, the other's registration may be unseen: then the
    // split is uneven (one holds both), but a lease is never taken from its live holder (read
    // by its own key) and every subnet is scanned by exactly one of them.
    const split = () => {
      const [x, y] = [scanning(a), scanning(b)];
      return x !== undefined && y !== undefined && [...x, ...y].sort().join() === SUBNETS.join();
    };
    if (!(await eventually(split, 20_000))) {
      for (const w of [a, b])
        console.log(
          w.logs
            .filter((l) => l.level !== 20)
            .map((l) => JSON.stringify(l))
            .join('\n'),
        );
    }
    // Three intervals to settle (a watcher that started first holds both until it sees the other).
    await new Promise((r) => setTimeout(r, 3000));
    expect(split()).toBe(true);
    const [markA, markB] = [a.logs.length, b.logs.length];
    // Six intervals more: the split holds at every cycle (each scans its own subnets alone and
    // logs no other lease), and neither took a lease over.
    const [mineA, mineB] = [scanning(a), scanning(b)];
    await new Promise((r) => setTimeout(r, 6000));
    const since = (w: WatchProcess, mark: number, msg: string) => w.logs.slice(mark).filter((l) => l.msg === msg);
    const scans = [...since(a, markA, 'resolve done'), ...since(b, markB, 'resolve done')];
    console.log(
      `figure: fleet-junk: ${scans.length} resolves over 6 s with 1,100 junk scanner keys, leases unchanged (${mineA?.length ?? 0} + ${mineB?.length ?? 0} subnets)`,
    );
    expect(scans.length).toBeGreaterThanOrEqual(6);
    // A watcher with no lease scans nothing (its resolve names no scanned subnets).
    const scannedBy = (l: LogLine) => String((l.scanned as string[] | undefined) ?? []);
    expect(since(a, markA, 'resolve done').every((l) => scannedBy(l) === String(mineA))).toBe(true);
    expect(since(b, markB, 'resolve done').every((l) => scannedBy(l) === String(mineB))).toBe(true);
    expect(since(a, markA, 'scan leases').every((l) => String(l.scanning) === String(mineA))).toBe(true);
    expect(since(b, markB, 'scan leases').every((l) => String(l.scanning) === String(mineB))).toBe(true);
    const lost = (w: WatchProcess, mark: number) =>
      since(w, mark, 'ignored a Redis value').filter((l) => /no fresh registration/.test(String(l.reason)));
    expect([...lost(a, markA), ...lost(b, markB)]).toEqual([]);
    // The junk is said (unsigned) and counted.
    expect(a.logs.some((l) => l.msg === 'ignored a Redis value' && l.kind === 'scanner')).toBe(true);
    for (const w of [a, b]) w.signal('SIGTERM');
    for (const w of [a, b]) expect((await w.exited).code).toBe(0);
  }, 60_000);

  it('key files that differ only in bytes that are not text are two keys: a watcher under one does not believe the other', async () => {
    const redis = await startRedis();
    const host = '127.0.13.90';
    // 32 bytes of 0xff and 32 of 0xfe: neither is UTF-8, and read as text both are the same
    // 32 replacement characters.
    const mine = keyFileWith(Buffer.alloc(32, 0xff));
    const theirs = keyFileWith(Buffer.alloc(32, 0xfe));
    const common = ['--redis', redis.url, '--interval', '1h', '--health-interval', '1h', '--timeout', '300'];
    // A scans the address once, before anything listens there; the peer is in its scope after.
    const a = startWatch(['--sources', 'scan', '--subnet', host, '-p', '50052', '--fleet-key-file', mine, ...common]);
    await a.waitFor('A: first resolve', isLog('first resolve done'), 15_000);
    const peer = await ggmlRpcPeer({ generation: '5.x', host, port: 50052 });
    const c = startWatch([
      '--sources',
      'config',
      '--config',
      configFile([`${host}:50052`]),
      '--fleet-key-file',
      theirs,
      ...common,
    ]);
    await c.waitFor('C: added', isEvent('added', host), 15_000);
    const byC = peer.connections;
    await a.waitFor('A: ignored (bad signature)', ignoredFor(a, /^bad signature/), 10_000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 2000));
    console.log(`figure: fleet-key binary: peer connections by C ${byC}, after C's report ${peer.connections}`);
    expect(a.events).toEqual([]);
    expect(peer.connections).toBe(byC);
    expect(a.logs.some(ignoredFor(a, /^bad signature/))).toBe(true);
  }, 60_000);

  it('a key or token file under 16 bytes, over 4 KiB, or no regular file (/dev/zero, a FIFO, a directory) is a usage error naming it, at once', async () => {
    const short = keyFileWith('fifteen-bytes!!');
    const large = keyFileWith(Buffer.alloc(5000, 0x61));
    const fifo = join(mkdtempSync(join(tmpdir(), 'sb-fifo-')), 'key');
    execFileSync('mkfifo', [fifo]);
    const cases: [string, string, string, RegExp][] = [
      ['watch', '--fleet-key-file', short, /holds 15 bytes; a fleet key needs 16 or more/],
      ['serve', '--fleet-key-file', short, /holds 15 bytes/],
      ['watch', '--fleet-key-file', large, /is over 4096 bytes/],
      ['watch', '--fleet-key-file', '/dev/zero', /a character device, not a regular file/],
      ['serve', '--fleet-key-file', fifo, /a FIFO, not a regular file/],
      ['serve', '--token-file', '/dev/zero', /a character device, not a regular file/],
      ['serve', '--token-file', tmpdir(), /a directory, not a regular file/],
    ];
    for (const [command, flag, file, message] of cases) {
      // Bounded: a file that is not refused would leave a daemon running or a read never ending.
      const { child, done } = startCli([command, '--sources', 'config', flag, file]);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const run = await done;
      clearTimeout(timer);
      expect(run.code, `${command} ${flag} ${file}`).toBe(2);
      expect(run.stderr).toContain(`${flag}: ${file}`);
      expect(run.stderr).toMatch(message);
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
