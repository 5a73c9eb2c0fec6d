// Issue 20: several supervisors, one Redis. A ggml-rpc server serves one client at a time, so
// the servers a coordinator uses are claimed (<prefix>claim:<address>:<port>): all or none,
// renewed while it runs, released when it stops, expiring after a crash. Another watcher
// leaves a claimed server alone: never connected to, marked claimedBy, not usable. The Redis
// is hostile input: junk claims are ignored, counted and taken over.
// Real redis-server, real ggml-rpc peers and a real claim-holding process on 127.0.29.x.
import { spawn } from 'node:child_process';

import { describe, expect, it, onTestFinished } from 'vitest';

import { resolveBackends, watchBackends, type Watcher } from '../../lib/index.js';
import { ClaimReader, CoordinatorClaims } from '../../lib/redis/claims.js';
import { IgnoredValues } from '../../lib/redis/ignored.js';
import { RedisKeys } from '../../lib/redis/keys.js';
import { Signer } from '../../lib/redis/signing.js';
import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { eventually } from '../helpers/net.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { valid } from '../helpers/schemas.js';

const KEY = 'scan-backends:claim:';
const HOLDER = new URL('../helpers/claim-holder.mjs', import.meta.url);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A supervisor's claims over a client of the test's own (renewed every `renewMs`, clamped). */
function claimer(redis: RedisServer, watcher: string, host = `host-of-${watcher}`, renewMs = 1000, key?: Buffer) {
  const client = redis.client();
  const keys = new RedisKeys();
  const signer = new Signer(key);
  const ignored = new IgnoredValues(() => {});
  const reader = new ClaimReader(client, keys, signer, ignored);
  const claims = new CoordinatorClaims(client, keys, signer, reader, { watcher, host, pid: process.pid, renewMs });
  onTestFinished(() => claims.release().catch(() => {}));
  return { claims, reader, ignored };
}

/** A claim's value as a watcher writes it, fields overridden. */
const claimValue = (fields: Record<string, unknown> = {}) =>
  JSON.stringify({ watcher: 'w', host: 'h', pid: 1, at: new Date().toISOString(), ...fields });

function watch(redis: RedisServer, servers: string[]): Watcher {
  const w = watchBackends({
    sources: ['config'],
    configPath: configFile(servers),
    redisUrl: redis.url,
    intervalMs: 500,
    healthIntervalMs: 200,
    timeoutMs: 300,
    probeTimeoutMs: 500,
  });
  onTestFinished(() => w.close());
  return w;
}

const backendOf = (w: Watcher, host: string) => w.snapshot().backends.find((b) => b.host === host);

/** Until `n` more health rounds are done (bounded). */
async function healthRounds(w: Watcher, n: number): Promise<void> {
  const target = w.snapshot().watcher.healthRounds + n;
  expect(await eventually(() => w.snapshot().watcher.healthRounds >= target, 10_000)).toBe(true);
}

describe('coordinator claims', () => {
  it('claims all or none: a second claimer gets nothing and an error naming the holder', async () => {
    const redis = await startRedis();
    const client = redis.client();
    const a = claimer(redis, 'watcher-a', 'host-a');
    const b = claimer(redis, 'watcher-b', 'host-b');
    await a.claims.claimAll(['127.0.29.1:50052', '127.0.29.2:50052']);
    expect(a.claims.servers).toEqual(['127.0.29.1:50052', '127.0.29.2:50052']);

    const error = await b.claims.claimAll(['127.0.29.3:50052', '127.0.29.2:50052']).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'SB_CLAIM_TAKEN',
      name: 'ClaimTakenError',
      server: '127.0.29.2:50052',
      holder: { watcher: 'watcher-a', host: 'host-a' },
      message: '127.0.29.2:50052 is held by the coordinator of watcher watcher-a on host host-a',
    });
    // None: the free server was not claimed either.
    expect(await client.exists(`${KEY}127.0.29.3:50052`)).toBe(0);
    expect(b.claims.servers).toEqual([]);
    expect(JSON.parse((await client.get(`${KEY}127.0.29.2:50052`)) as string)).toMatchObject({
      watcher: 'watcher-a',
      host: 'host-a',
      pid: process.pid,
    });

    // A server not held by anyone is b's; claiming again with another set lets go of the rest.
    await b.claims.claimAll(['127.0.29.3:50052']);
    await a.claims.claimAll(['127.0.29.1:50052']);
    expect(await client.exists(`${KEY}127.0.29.2:50052`)).toBe(0);
    expect(await client.exists(`${KEY}127.0.29.1:50052`, `${KEY}127.0.29.3:50052`)).toBe(2);
  });

  it('renews claims past their TTL while held, and release lets go of those still ours only', async () => {
    const redis = await startRedis();
    const client = redis.client();
    const a = claimer(redis, 'watcher-a', 'host-a', 1000);
    expect([a.claims.renewMs, a.claims.ttlMs]).toEqual([1000, 3000]);
    await a.claims.claimAll(['127.0.29.1:50052', '127.0.29.2:50052']);
    await sleep(4500); // 1.5 TTLs
    expect(await client.exists(`${KEY}127.0.29.1:50052`, `${KEY}127.0.29.2:50052`)).toBe(2);
    const pttl = await client.pttl(`${KEY}127.0.29.1:50052`);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(3000);

    // Another's value on one key since (the claim was lost and taken): release leaves it.
    const theirs = claimValue({ watcher: 'watcher-c' });
    await client.set(`${KEY}127.0.29.2:50052`, theirs, 'PX', 20_000);
    await a.claims.release();
    expect(await client.exists(`${KEY}127.0.29.1:50052`)).toBe(0);
    expect(await client.get(`${KEY}127.0.29.2:50052`)).toBe(theirs);
    await claimer(redis, 'watcher-b').claims.claimAll(['127.0.29.1:50052']);
  });

  it("a SIGKILLed holder's claim lives while it runs and expires one TTL after, for others to claim", async () => {
    const redis = await startRedis();
    const client = redis.client();
    const server = '127.0.29.5:50052';
    const child = spawn(process.execPath, [HOLDER.pathname, redis.url, configFile([server]), server], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    onTestFinished(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    expect(await eventually(() => out.includes('claimed'), 10_000), err).toBe(true);
    const holderId = /claimed (\S+)/.exec(out)?.[1];
    const key = `${KEY}${server}`;
    expect(JSON.parse((await client.get(key)) as string)).toMatchObject({ watcher: holderId, pid: child.pid });

    const mine = claimer(redis, 'watcher-b');
    await expect(mine.claims.claimAll([server])).rejects.toMatchObject({ code: 'SB_CLAIM_TAKEN' });
    await sleep(4000); // past its 3 s TTL: renewed by the holder
    expect(await client.exists(key)).toBe(1);

    child.kill('SIGKILL');
    await exited;
    // Renewed at most a second before the kill: gone within its 3 s TTL (bounded at 5 s here).
    expect(await eventually(async () => (await client.exists(key)) === 0, 5000)).toBe(true);
    await mine.claims.claimAll([server]);
  });

  it('onLost says when a renewal finds a claim deleted or taken by someone else', async () => {
    const redis = await startRedis();
    const client = redis.client();
    const a = claimer(redis, 'watcher-a', 'host-a', 1000);
    const lost: [string, string[]][] = [];
    a.claims.onLost((why, servers) => lost.push([why, servers]));
    a.claims.onLost(() => {
      throw new Error('a listener that throws');
    });
    await a.claims.claimAll(['127.0.29.1:50052', '127.0.29.2:50052', '127.0.29.3:50052']);
    await client.del(`${KEY}127.0.29.1:50052`);
    expect(await eventually(() => lost.length === 1, 3000)).toBe(true);
    expect(lost[0]).toEqual([
      'the claim on 127.0.29.1:50052 is gone (expired, or deleted by another)',
      ['127.0.29.1:50052'],
    ]);
    expect(a.claims.servers).toEqual(['127.0.29.2:50052', '127.0.29.3:50052']);

    await client.set(`${KEY}127.0.29.2:50052`, claimValue({ watcher: 'thief', host: 'far' }), 'PX', 20_000);
    expect(await eventually(() => lost.length === 2, 3000)).toBe(true);
    expect(lost[1]?.[0]).toBe(
      'the claim on 127.0.29.2:50052 was taken: held by the coordinator of watcher thief on host far',
    );
    // The rest is still renewed, and a claim released is not lost.
    await sleep(3500);
    expect(await client.exists(`${KEY}127.0.29.3:50052`)).toBe(1);
    await a.claims.release();
    await sleep(1500);
    expect(lost).toHaveLength(2);
  });

  it('onLost says when Redis has not answered a renewal for a whole TTL', async () => {
    const redis = await startRedis();
    const a = claimer(redis, 'watcher-a', 'host-a', 1000);
    const lost: [string, string[]][] = [];
    a.claims.onLost((why, servers) => lost.push([why, servers]));
    await a.claims.claimAll(['127.0.29.1:50052']);
    await redis.kill();
    expect(await eventually(() => lost.length === 1, 8000)).toBe(true);
    expect(lost[0]?.[0]).toMatch(/^not renewed for [3-7] s \(.+\)$/);
    expect(lost[0]?.[1]).toEqual(['127.0.29.1:50052']);
    expect(a.claims.servers).toEqual([]);
  });

  it('ignores and counts hostile claims, reads none whole, takes them over, and lists 10k keys bounded', async () => {
    const redis = await startRedis();
    const client = redis.client();
    const a = claimer(redis, 'watcher-a');
    const hostile: [string, () => Promise<unknown>][] = [
      ['huge', () => client.set(`${KEY}127.0.29.11:1`, 'x'.repeat(2 * 1024 * 1024), 'PX', 20_000)],
      ['not JSON', () => client.set(`${KEY}127.0.29.12:1`, '{"watcher":', 'PX', 20_000)],
      ['wrong types', () => client.set(`${KEY}127.0.29.13:1`, claimValue({ pid: 'one', watcher: 7 }), 'PX', 20_000)],
      ['an array', () => client.set(`${KEY}127.0.29.14:1`, '[1,2,3]', 'PX', 20_000)],
      ['no expiry', () => client.set(`${KEY}127.0.29.15:1`, claimValue())],
      ['an hour', () => client.set(`${KEY}127.0.29.16:1`, claimValue(), 'PX', 3_600_000)],
      ['a hash', () => client.hset(`${KEY}127.0.29.17:1`, 'watcher', 'w')],
      ['a bad time', () => client.set(`${KEY}127.0.29.18:1`, claimValue({ at: 'soon' }), 'PX', 20_000)],
      ['a key of another shape', () => client.set(`${KEY}not-an-address`, claimValue(), 'PX', 20_000)],
    ];
    for (const [, write] of hostile) await write();
    await client.set(`${KEY}127.0.29.19:1`, claimValue({ watcher: 'fine' }), 'PX', 20_000);

    const named = await a.reader.read(
      [11, 12, 13, 14, 15, 16, 17, 18, 19].map((i) => ({ host: `127.0.29.${i}`, port: 1 })),
      false,
    );
    expect(named.map((c) => `${c.server.host} ${c.holder.watcher}`)).toEqual(['127.0.29.19 fine']);
    expect(a.ignored.counts.claim).toBe(8);
    const listed = await a.reader.read([], true);
    expect(listed.map((c) => c.holder.watcher)).toEqual(['fine']);
    expect(a.ignored.counts.claim).toBe(9); // each key counted once

    // Junk holds no server: claiming takes every one over, all at once.
    await a.claims.claimAll([11, 12, 13, 14, 15, 16, 17, 18].map((i) => `127.0.29.${i}:1`));
    for (const i of [11, 12, 13, 14, 15, 16, 17, 18])
      expect(JSON.parse((await client.get(`${KEY}127.0.29.${i}:1`)) as string)).toMatchObject({ watcher: 'watcher-a' });

    const pipeline = client.pipeline();
    for (let i = 0; i < 10_000; i += 1) pipeline.set(`${KEY}junk-${i}`, 'x', 'PX', 60_000);
    await pipeline.exec();
    const many = await a.reader.read([{ host: '127.0.29.19', port: 1 }], true);
    // The named claim is read whatever junk the listing meets; the listing stops at 4096 keys.
    expect(many.some((c) => c.holder.watcher === 'fine')).toBe(true);
    expect(a.ignored.counts.claim - 9).toBeGreaterThan(3000);
    expect(a.ignored.counts.claim - 9).toBeLessThanOrEqual(4096);
  });

  it('with a fleet key, counts only claims signed for their own server', async () => {
    const redis = await startRedis();
    const client = redis.client();
    const key = Buffer.alloc(32, 7);
    const signed = claimer(redis, 'watcher-a', 'host-a', 1000, key);
    const reader = claimer(redis, 'watcher-b', 'host-b', 1000, key);
    await signed.claims.claimAll(['127.0.29.41:1']);
    const value = (await client.get(`${KEY}127.0.29.41:1`)) as string;
    expect(JSON.parse(value).sig).toMatch(/^[0-9a-f]{64}$/);
    // The same signed value on another server's key, and an unsigned claim: neither counts.
    await client.set(`${KEY}127.0.29.42:1`, value, 'PX', 20_000);
    await client.set(`${KEY}127.0.29.43:1`, claimValue(), 'PX', 20_000);
    const claims = await reader.reader.read([], true);
    expect(claims.map((c) => `${c.server.host} ${c.holder.watcher}`)).toEqual(['127.0.29.41 watcher-a']);
    expect(reader.ignored.counts.claim).toBe(2);
    await expect(reader.claims.claimAll(['127.0.29.41:1'])).rejects.toMatchObject({ code: 'SB_CLAIM_TAKEN' });
    await reader.claims.claimAll(['127.0.29.42:1', '127.0.29.43:1']);
  });

  it('a watcher leaves a server another coordinator claims alone: claimedBy, held, never probed, not usable', async () => {
    const redis = await startRedis();
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.29.21' });
    const other = await ggmlRpcPeer({ generation: '5.x', host: '127.0.29.22' });
    const [claimed, free] = [`127.0.29.21:${peer.port}`, `127.0.29.22:${other.port}`];
    const evil = `evil\u001b[2J\u202ewatcher${'x'.repeat(200)}`;
    const holder = claimer(redis, evil, 'other-host');
    await holder.claims.claimAll([claimed]);

    const w = watch(redis, [claimed, free]);
    expect(await eventually(() => backendOf(w, '127.0.29.22')?.usable === true, 10_000)).toBe(true);
    await healthRounds(w, 5);
    const view = backendOf(w, '127.0.29.21');
    const shown = `evil[2Jwatcher${'x'.repeat(113)}…`;
    expect(view).toMatchObject({
      state: 'up',
      health: 'busy',
      evidence: 'held',
      usable: false,
      claimedBy: { watcher: shown, host: 'other-host' },
      leftOut: `held by the coordinator of watcher ${shown} on host other-host`,
    });
    expect(peer.connections).toBe(0); // never its accept queue spent, in resolves or health rounds
    expect(other.connections).toBeGreaterThan(2);
    expect(w.snapshot().rpc).toBe(free);
    expect(
      valid('watch-event', {
        schema: 1,
        id: 1,
        time: new Date().toISOString(),
        type: 'up',
        backend: view,
        cause: { check: 'health', saw: 'x' },
      }),
    ).toBe('valid');

    // Released: checked as any other, and usable.
    await holder.claims.release();
    expect(await eventually(() => backendOf(w, '127.0.29.21')?.usable === true, 10_000)).toBe(true);
    expect(backendOf(w, '127.0.29.21')?.claimedBy).toBeUndefined();
    expect(peer.connections).toBeGreaterThan(0);

    // Its own claims are not another's: still checked, still usable.
    const mine = await w.coordinatorClaims();
    await mine.claimAll([claimed, free]);
    const before = peer.connections;
    await healthRounds(w, 3);
    expect(backendOf(w, '127.0.29.21')).toMatchObject({ usable: true });
    expect(backendOf(w, '127.0.29.21')?.claimedBy).toBeUndefined();
    expect(peer.connections).toBeGreaterThan(before);
    expect(w.snapshot().rpc).toBe(`${claimed},${free}`);
  });

  it('a one-shot resolve with the Redis leaves a claimed server alone too', async () => {
    const redis = await startRedis();
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.29.51' });
    const server = `127.0.29.51:${peer.port}`;
    const holder = claimer(redis, 'watcher-a', 'host-a');
    await holder.claims.claimAll([server]);
    const configPath = configFile([server]);
    const resolve = () => resolveBackends({ sources: ['config'], configPath, redisUrl: redis.url });
    const held = await resolve();
    expect(held.backends).toEqual([
      expect.objectContaining({
        host: '127.0.29.51',
        health: 'busy',
        evidence: 'held',
        reason: expect.stringContaining('held by the coordinator of watcher watcher-a on host host-a'),
      }),
    ]);
    expect(peer.connections).toBe(0);

    await holder.claims.release();
    const free = await resolve();
    expect(free.backends).toEqual([expect.objectContaining({ host: '127.0.29.51', health: 'serving' })]);
    expect(peer.connections).toBeGreaterThan(0);
  });

  it('a watcher keeps working over hostile claims and 10k junk keys, counting them', async () => {
    const redis = await startRedis();
    const client = redis.client();
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.29.31' });
    const server = `127.0.29.31:${peer.port}`;
    await client.set(`${KEY}${server}`, 'x'.repeat(64 * 1024), 'PX', 60_000);
    await client.set(`${KEY}127.0.29.32:1`, claimValue({ pid: null }), 'PX', 60_000);
    await client.set(`${KEY}127.0.29.33:1`, claimValue(), 'PX', 3_600_000);
    const pipeline = client.pipeline();
    for (let i = 0; i < 10_000; i += 1) pipeline.set(`${KEY}127.0.30.${i % 250}:${i + 1}`, '"x"', 'PX', 60_000);
    await pipeline.exec();

    const w = watch(redis, [server]);
    expect(await eventually(() => backendOf(w, '127.0.29.31')?.usable === true, 10_000)).toBe(true);
    await healthRounds(w, 3);
    const { cycles, healthRounds: rounds, redis: seen } = w.snapshot().watcher;
    const ignored = seen?.ignored?.claim ?? 0;
    expect(ignored).toBeGreaterThan(3000);
    // At most 4096 keys listed per resolve, one named per health round (the memory of keys
    // counted once starts over past 4096).
    expect(ignored).toBeLessThanOrEqual(4096 * cycles + rounds);
    expect(backendOf(w, '127.0.29.31')).toMatchObject({ state: 'up', usable: true });
    expect(backendOf(w, '127.0.29.31')?.claimedBy).toBeUndefined();
    const probed = peer.connections;
    await healthRounds(w, 2);
    expect(peer.connections).toBeGreaterThan(probed);
  });
});
