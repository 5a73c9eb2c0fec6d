// The resolver with a real Redis and real ggml-rpc peers. These tests never use the process
// source: another file (resolver-process.test.ts) runs a fake coordinator meanwhile.

import { describe, expect, it } from 'vitest';

import { resolveBackends } from '../../lib/resolver/index.js';
import { configFile } from '../helpers/config.js';
import { runCli } from '../helpers/cli.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { closedPort, eventually, listen } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';
import { skipWithout } from '../helpers/tools.js';

describe('resolveBackends: config and scan sources', () => {
  it('verifies every config entry: keeps the ggml-rpc server, drops a closed port and a non-ggml-rpc service', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.181' });
    const closed = await closedPort('127.0.0.182');
    const { port: web } = await listen('127.0.0.183');
    const file = configFile([
      `127.0.0.181:${peer.port}`,
      `127.0.0.182:${closed}`,
      `127.0.0.183:${web}`,
      'coordinator:0',
      'oops oops',
    ]);
    const r = await resolveBackends({ sources: ['config'], configPath: file, probeTimeoutMs: 500 });
    expect(r.backends).toEqual([
      expect.objectContaining({
        host: '127.0.0.181',
        port: peer.port,
        sources: ['config'],
        verified: true,
        health: 'serving',
      }),
    ]);
    const [source] = r.sources;
    expect(source).toMatchObject({ name: 'config', status: 'ok', found: 4, message: file });
    expect(source?.warnings).toEqual([`${file}:5: bad token "oops oops" (not a host[:port])`]);
    expect(source?.dropped.map((d) => [d.host, d.reason.replace(/:.*/s, '')])).toEqual([
      ['coordinator', `${file}`],
      ['127.0.0.182', 'closed (connection refused)'],
      ['127.0.0.183', 'not a ggml-rpc server'],
    ]);
  });

  it('--no-verify returns candidates marked unverified', async () => {
    const file = configFile(['127.0.0.184:1']);
    const r = await resolveBackends({ sources: ['config'], configPath: file, verify: false });
    expect(r.backends).toEqual([{ host: '127.0.0.184', port: 1, sources: ['config'], verified: false }]);
  });

  it('falls through to the next source when one finds nothing live, and merges with provenance', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.185', port: 50052 });
    const dead = configFile(['127.0.0.186']);
    const first = await resolveBackends({ sources: ['config', 'scan'], configPath: dead, subnet: '127.0.0.184-187' });
    expect(first.sources.map((s) => s.status)).toEqual(['empty', 'ok']);
    expect(first.backends.map((b) => [b.host, b.sources])).toEqual([['127.0.0.185', ['scan']]]);
    const both = configFile(['127.0.0.185']);
    const merged = await resolveBackends({
      sources: ['config', 'scan'],
      configPath: both,
      subnet: '127.0.0.184-187',
      merge: true,
    });
    expect(merged.backends.map((b) => [b.host, b.sources])).toEqual([['127.0.0.185', ['config', 'scan']]]);
    expect(peer.dead).toBe(false);
  });

  it('warns past the 16 backends llama.cpp takes', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 17; i++)
      lines.push(`127.0.1.${10 + i}:${(await ggmlRpcPeer({ generation: '5.x', host: `127.0.1.${10 + i}` })).port}`);
    const r = await resolveBackends({ sources: ['config'], configPath: configFile(lines) });
    expect(r.backends).toHaveLength(17);
    expect(r.warnings).toEqual(["17 live backends: llama.cpp's coordinator takes at most 16"]);
  });
});

describe.skipIf(skipWithout(['redis-server', 'redis-server']))('resolveBackends: the Redis registry', () => {
  it('records verified backends with provenance, first/last seen and a TTL, and never a placeholder', async () => {
    const redis = await startRedis();
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.191' });
    const file = configFile([`127.0.0.191:${peer.port}`, 'coordinator:0', '127.0.0.192:0']);
    await resolveBackends({ sources: ['config'], configPath: file, redisUrl: redis.url, redisTtlSeconds: 120 });
    const client = redis.client();
    const keys = await client.keys('scan-backends:*');
    expect(keys).toEqual([`scan-backends:backend:127.0.0.191:${peer.port}`]);
    const entry = await client.hgetall(keys[0] as string);
    expect(entry).toMatchObject({
      host: '127.0.0.191',
      port: String(peer.port),
      sources: '["config"]',
      service: 'ggml-rpc',
      protocol: '5.0.0',
    });
    expect(Number(entry.firstSeen)).toBeLessThanOrEqual(Number(entry.lastSeen));
    const ttl = await client.ttl(keys[0] as string);
    expect(ttl).toBeGreaterThan(100);
    expect(ttl).toBeLessThanOrEqual(120);
  });

  it('lets an entry expire after its TTL', async () => {
    const redis = await startRedis();
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.193' });
    await resolveBackends({
      sources: ['config'],
      configPath: configFile([`127.0.0.193:${peer.port}`]),
      redisUrl: redis.url,
      redisTtlSeconds: 1,
    });
    const client = redis.client();
    expect(await client.exists(`scan-backends:backend:127.0.0.193:${peer.port}`)).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect(await client.exists(`scan-backends:backend:127.0.0.193:${peer.port}`)).toBe(0);
  });

  it('serves other coordinators: a backend recorded by one resolve is found by another through Redis', async () => {
    const redis = await startRedis();
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.194' });
    await resolveBackends({
      sources: ['config'],
      configPath: configFile([`127.0.0.194:${peer.port}`]),
      redisUrl: redis.url,
    });
    const r = await resolveBackends({ sources: ['redis'], redisUrl: redis.url });
    expect(r.backends).toEqual([expect.objectContaining({ host: '127.0.0.194', sources: ['redis'], verified: true })]);
    const entry = await redis.client().hget(`scan-backends:backend:127.0.0.194:${peer.port}`, 'sources');
    expect(JSON.parse(entry as string)).toEqual(['config', 'redis']);
  });

  it('publishes changes: a second client sees added, updated and removed events', async () => {
    const redis = await startRedis();
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.195' });
    const watcher = redis.client();
    const events: { type: string; host: string }[] = [];
    await watcher.subscribe('scan-backends:events');
    watcher.on('message', (_channel, message: string) => events.push(JSON.parse(message)));
    const file = configFile([`127.0.0.195:${peer.port}`]);
    await resolveBackends({ sources: ['config'], configPath: file, redisUrl: redis.url });
    await resolveBackends({ sources: ['config'], configPath: file, redisUrl: redis.url });
    await peer.close();
    await resolveBackends({ sources: ['redis'], redisUrl: redis.url });
    await eventually(() => events.length >= 3);
    expect(events.map((e) => `${e.type} ${e.host}`)).toEqual([
      'added 127.0.0.195',
      'updated 127.0.0.195',
      'removed 127.0.0.195',
    ]);
  });

  it('answers from the other sources when Redis dies mid-run, and says Redis is unavailable', async () => {
    const redis = await startRedis();
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.196' });
    const file = configFile([`127.0.0.196:${peer.port}`]);
    const first = await resolveBackends({ sources: ['redis', 'config'], configPath: file, redisUrl: redis.url });
    expect(first.backends.map((b) => b.host)).toEqual(['127.0.0.196']);
    await redis.kill();
    const after = await resolveBackends({ sources: ['redis', 'config'], configPath: file, redisUrl: redis.url });
    expect(after.backends.map((b) => [b.host, b.sources])).toEqual([['127.0.0.196', ['config']]]);
    expect(after.sources[0]).toMatchObject({ name: 'redis', status: 'error' });
    expect(after.sources[0]?.message).toContain(`Redis unavailable at ${redis.url}`);
    expect(after.warnings[0]).toContain(`Redis unavailable at ${redis.url}`);
  });

  it('--require-redis makes Redis down an environment error (exit 3)', async () => {
    const redis = await startRedis();
    await redis.kill();
    const run = await runCli(['resolve', '--sources', 'redis', '--redis', redis.url, '--require-redis']);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain(`Redis unavailable at ${redis.url}`);
  });
});

describe('scan-backends resolve', () => {
  it('--format rpc prints exactly host:port,host:port and a newline', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.197' });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '::1' });
    const file = configFile([`127.0.0.197:${a.port}`, `[::1]:${b.port}`]);
    const run = await runCli(['resolve', '--sources', 'config', '--config', file, '--format', 'rpc']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`127.0.0.197:${a.port},[::1]:${b.port}\n`);
  });

  it('json carries schema 1; exit 1 when nothing is live; --explain says why on stderr', async () => {
    const closed = await closedPort('127.0.0.198');
    const file = configFile([`127.0.0.198:${closed}`]);
    const run = await runCli(['resolve', '--sources', 'config', '--config', file, '--format', 'json', '--explain']);
    expect(run.code).toBe(1);
    const out = JSON.parse(run.stdout);
    expect(out).toMatchObject({ schema: 1, backends: [], sources: [{ name: 'config', status: 'empty', found: 1 }] });
    expect(run.stderr).toContain(`config: empty, 1 named (${file})`);
    expect(run.stderr).toContain(`dropped 127.0.0.198:${closed}: closed (connection refused)`);
  });

  it.each([
    [['resolve', '--sources', 'dns'], '--sources: expected a list of process, config, scan, redis, dns-sd; got "dns"'],
    [['resolve', '--format', 'yaml'], '--format: expected table, json, ndjson, rpc; got "yaml"'],
    [['resolve', '--sources', 'scan', '--subnet', '10.0.0.0/33'], '10.0.0.0/33: prefix must be 0..32'],
  ])('%j is a usage error', async (args, message) => {
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });

  it('--strict turns a bad config line into an error naming file and line, with no usage hint', async () => {
    const file = configFile(['127.0.0.1', 'what is this']);
    const run = await runCli(['resolve', '--sources', 'config', '--config', file, '--strict']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${file}:2: bad token "what is this"`);
    // The command line is fine: no help text would fix the file (issue 22).
    expect(run.stderr).not.toContain('--help');
  });
});
