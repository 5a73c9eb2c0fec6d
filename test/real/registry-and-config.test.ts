// The registry and the config cannot be turned against the resolver: bad entries are dropped
// one by one, a silent or locked Redis is "unavailable" within its deadline with a reason a
// person can act on, and a config path that is no regular file is refused at once.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { resolveBackends } from '../../lib/resolver/index.js';
import { scanAll } from '../../lib/scan/job.js';
import { configFile } from '../helpers/config.js';
import { runCli } from '../helpers/cli.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { hostilePeer } from '../helpers/hostile.js';
import { closedPort } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';
import { skipWithout } from '../helpers/tools.js';

describe('the Redis registry as hostile data', () => {
  it('drops each bad entry with its reason and keeps the good ones', async () => {
    if (skipWithout(['redis-server', 'redis-server'])) return;
    const redis = await startRedis('127.0.0.190');
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.191' });
    const c = redis.client();
    await c.set('scan-backends:backend:x', 'hello');
    await c.hset('scan-backends:backend:big', { host: '127.0.0.192', port: '99999' });
    await c.hset('scan-backends:backend:half', { host: '127.0.0.193' });
    await c.hset('scan-backends:backend:inf', { host: '127.0.0.194', port: 'Infinity' });
    await c.hset(`scan-backends:backend:127.0.0.191:${peer.port}`, {
      host: '127.0.0.191',
      port: String(peer.port),
      sources: '"abc"',
    });
    const r = await resolveBackends({ sources: ['redis'], redisUrl: redis.url });
    expect(r.backends).toEqual([
      expect.objectContaining({ host: '127.0.0.191', port: peer.port, sources: ['redis'], health: 'serving' }),
    ]);
    const reasons = r.sources[0]?.dropped.map((d) => d.reason).join('\n');
    expect(reasons).toMatch(/backend:x: not a hash/);
    expect(reasons).toMatch(/port "99999" is not 1\.\.65535/);
    expect(reasons).toMatch(/backend:half: missing port/);
    expect(reasons).toMatch(/port "Infinity" is not 1\.\.65535/);
    // The string "abc" did not become sources a, b, c.
    expect(JSON.parse((await c.hget(`scan-backends:backend:127.0.0.191:${peer.port}`, 'sources')) ?? '')).toEqual([
      'redis',
    ]);
  });

  it('a Redis that accepts and never answers is unavailable within its deadline, and a config source does not wait on it', async () => {
    const silent = await hostilePeer('sink', '127.0.0.195');
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.196' });
    const file = configFile([`127.0.0.196:${peer.port}`]);
    const started = performance.now();
    const r = await resolveBackends({
      sources: ['config'],
      configPath: file,
      redisUrl: `redis://127.0.0.195:${silent}`,
    });
    expect(r.backends).toHaveLength(1);
    expect(r.warnings.join('\n')).toMatch(
      /Redis unavailable at redis:\/\/127\.0\.0\.195:\d+: no answer within 2000 ms/,
    );
    expect(performance.now() - started).toBeLessThan(8000);
    await expect(
      resolveBackends({
        sources: ['config'],
        configPath: file,
        redisUrl: `redis://127.0.0.195:${silent}`,
        requireRedis: true,
      }),
    ).rejects.toMatchObject({ code: 'SB_SOURCE_UNAVAILABLE', message: expect.stringMatching(/no answer within/) });
  });

  it('says "refused at host:port" for a refused Redis and asks for a password when Redis wants one', async () => {
    if (skipWithout(['redis-server', 'redis-server'])) return;
    const port = await closedPort('127.0.0.197');
    const refused = await resolveBackends({ sources: ['redis'], redisUrl: `redis://127.0.0.197:${port}` });
    expect(refused.sources[0]?.message).toBe(
      `Redis unavailable at redis://127.0.0.197:${port}: refused at 127.0.0.197:${port}`,
    );
    const redis = await startRedis('127.0.0.198');
    await redis.client().config('SET', 'requirepass', 'sekrit');
    const locked = await resolveBackends({ sources: ['redis'], redisUrl: redis.url });
    expect(locked.sources[0]?.message).toMatch(/wants a password \(NOAUTH\)/);
    const wrong = await resolveBackends({ sources: ['redis'], redisUrl: `redis://:nope@127.0.0.198:${redis.port}` });
    expect(wrong.sources[0]?.message).toMatch(/password was refused.*/);
    expect(wrong.sources[0]?.message).not.toContain('nope');
  });
});

describe('the config file as hostile data', () => {
  it('refuses /dev/zero and a FIFO with no writer at once, saying what they are', async () => {
    const zero = await resolveBackends({ sources: ['config'], configPath: '/dev/zero' });
    expect(zero.sources[0]).toMatchObject({
      status: 'error',
      message: '/dev/zero: a character device, not a regular file',
    });
    const fifo = join(mkdtempSync(join(tmpdir(), 'sb-fifo-')), 'rpc_backends.conf');
    execFileSync('mkfifo', [fifo]);
    const r = await resolveBackends({ sources: ['config'], configPath: fifo });
    expect(r.sources[0]).toMatchObject({ status: 'error', message: `${fifo}: a FIFO, not a regular file` });
    const missing = await runCli([
      'resolve',
      '--sources',
      'config',
      '--config',
      '/nonexistent/rpc_backends.conf',
      '--explain',
    ]);
    expect(missing.stderr).toContain('/nonexistent/rpc_backends.conf: no such file');
  });

  it('a binary file is named as such, not parsed into a thousand warnings', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sb-bin-')), 'rpc_backends.conf');
    writeFileSync(file, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3]));
    const r = await resolveBackends({ sources: ['config'], configPath: file });
    expect(r.sources[0]?.message).toBe(`${file}: binary data (a NUL byte), not a config file`);
  });
});

describe('options are checked where they enter', () => {
  it.each([
    [['resolve', '--timeout', '0'], '--timeout: must be an integer 1..3600000, got 0'],
    [['resolve', '--probe-timeout', '0'], '--probe-timeout: must be an integer 1..600000, got 0'],
    [['resolve', '--timeout', '99999999999'], '--timeout: must be an integer 1..3600000, got 99999999999'],
    [['resolve', '--redis-ttl', '0'], '--redis-ttl: must be an integer 1..31536000, got 0'],
    [['resolve', '--redis', 'foo'], '--redis: expected redis://host:port, got "foo"'],
    [['scan', '127.0.0.1', '--rate', ''], '--rate: expected a number >= 0, got ""'],
  ])('%j is a usage error naming the flag', async (args, message) => {
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });

  it('a safety switch opens only for a real true, and a TTL must be positive', async () => {
    await expect(scanAll('127.0.0.1', { allowPublic: 'false' as unknown as boolean })).rejects.toMatchObject({
      code: 'SB_INVALID_OPTION',
      message: 'allowPublic: must be true or false, got "false"',
    });
    await expect(resolveBackends({ sources: ['config'], redisTtlSeconds: 0 })).rejects.toMatchObject({
      code: 'SB_INVALID_OPTION',
    });
    await expect(resolveBackends({ sources: ['config'], redisTtlSeconds: -5 })).rejects.toMatchObject({
      code: 'SB_INVALID_OPTION',
    });
  });
});
