// Verdicts you can trust: a service that speaks and is not ggml-rpc is never ggml-rpc, a
// silent port is a labelled guess that resolve keeps only on a witness's word, a held server
// is not connected to (resolver-process.test.ts, which owns the coordinator processes), and a
// cluster is judged by itself without a client version.

import { describe, expect, it } from 'vitest';

import { resolveBackends } from '../../lib/resolver/index.js';
import { probe } from '../../lib/scan/job.js';
import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { hostilePeer } from '../helpers/hostile.js';
import { countFds, settledFdCount } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';
import { skipWithout } from '../helpers/tools.js';

const PROBE_TIMEOUT_MS = 800;

describe.each(['native', 'js'] as const)('silent and speaking services, %s engine', (engine) => {
  const base = engine === 'native' ? 200 : 210;

  it('a line-based server on 50052 answers the nudge and is never called ggml-rpc', async () => {
    const host = `127.0.0.${base}`;
    const port = await hostilePeer('line', host);
    const r = await probe(host, port, { engine, service: 'ggml-rpc', probeTimeoutMs: PROBE_TIMEOUT_MS });
    expect(r.service).toBe('unknown');
    expect(r.guess).toBeUndefined();
    expect(r.reason).toContain('answered a newline with "-ERR unknown command..": another protocol, not ggml-rpc');
  });

  it('an HTTP server probed for ggml-rpc is not ggml-rpc, and names what it sent', async () => {
    const host = `127.0.0.${base + 1}`;
    const port = await hostilePeer('ansi-version', host);
    const asked = await probe(host, port, { engine, service: 'ggml-rpc', probeTimeoutMs: PROBE_TIMEOUT_MS });
    expect(asked.service).toBe('unknown');
    expect(asked.reason).toContain('sent "HTTP/1.1 400 Bad Request", not a ggml-rpc HELLO reply');
  });

  it('a port that stays silent is a guess, and says it may be another service', async () => {
    const host = `127.0.0.${base + 2}`;
    const port = await hostilePeer('sink', host);
    const before = countFds();
    const r = await probe(host, port, { engine, service: 'ggml-rpc', probeTimeoutMs: PROBE_TIMEOUT_MS });
    expect(r).toMatchObject({ service: 'ggml-rpc', health: 'busy', guess: true });
    expect(r.reason).toMatch(/perhaps a ggml-rpc server busy with another client.*perhaps another service/);
    expect(await settledFdCount(before)).toBe(before);
  });

  it('a real redis-server stays silent to HELLO, so it is only a guess', async () => {
    if (skipWithout(['redis-server', 'redis-server'])) return;
    const redis = await startRedis(`127.0.0.${base + 3}`);
    const r = await probe(`127.0.0.${base + 3}`, redis.port, { engine, service: 'ggml-rpc', probeTimeoutMs: 600 });
    expect(r).toMatchObject({ service: 'ggml-rpc', health: 'busy', guess: true });
  });
});

describe('resolve keeps a silent port only on a witness', () => {
  it('drops silent ports nothing vouches for, naming --accept-silent, which keeps them unverified', async () => {
    const sink = await hostilePeer('sink', '127.0.0.220');
    const line = await hostilePeer('line', '127.0.0.221');
    const file = configFile([`127.0.0.220:${sink}`, `127.0.0.221:${line}`]);
    const options = { sources: ['config' as const], configPath: file, probeTimeoutMs: PROBE_TIMEOUT_MS };
    const strict = await resolveBackends(options);
    expect(strict.backends).toEqual([]);
    const [silent, speaking] = strict.sources[0]?.dropped ?? [];
    expect(silent?.reason).toMatch(
      /no running coordinator names it and the registry has no recent HELLO.*--accept-silent/,
    );
    expect(speaking?.reason).toMatch(/not a ggml-rpc server: .*answered a newline/);
    const loose = await resolveBackends({ ...options, acceptSilent: true });
    expect(loose.backends).toEqual([
      expect.objectContaining({ host: '127.0.0.220', port: sink, verified: false, guess: true, health: 'busy' }),
    ]);
  });

  it('keeps a silent port busy when the registry saw it answer HELLO within its TTL, not after', async () => {
    if (skipWithout(['redis-server', 'redis-server'])) return;
    const redis = await startRedis('127.0.0.223');
    const sink = await hostilePeer('sink', '127.0.0.224');
    const client = redis.client();
    const key = `scan-backends:backend:127.0.0.224:${sink}`;
    await client.hset(key, { host: '127.0.0.224', port: String(sink), lastProven: String(Date.now() - 5000) });
    const file = configFile([`127.0.0.224:${sink}`]);
    const options = {
      sources: ['config' as const],
      configPath: file,
      redisUrl: redis.url,
      probeTimeoutMs: PROBE_TIMEOUT_MS,
    };
    const fresh = await resolveBackends(options);
    expect(fresh.backends).toEqual([expect.objectContaining({ health: 'busy', evidence: 'registry' })]);
    // Kept on the registry's word, the entry is renewed but not re-proven: it cannot vouch
    // for itself past its TTL.
    expect(Number(await client.hget(key, 'lastProven'))).toBeLessThan(Date.now() - 4000);
    await client.hset(key, 'lastProven', String(Date.now() - 400_000));
    const stale = await resolveBackends(options);
    expect(stale.backends).toEqual([]);
  });
});

describe('compatibility fits the cluster', () => {
  it('without a client version keeps the servers one client can use together, and warns about the rest', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.230', version: [5, 0, 0] });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.231', version: [5, 1, 0] });
    const old = await ggmlRpcPeer({ generation: '3.x', host: '127.0.0.232' });
    const file = configFile([`127.0.0.230:${a.port}`, `127.0.0.231:${b.port}`, `127.0.0.232:${old.port}`]);
    const r = await resolveBackends({ sources: ['config'], configPath: file });
    expect(r.backends.map((x) => x.rpc?.protocol)).toEqual(['5.0.0', '5.1.0']);
    expect(r.compatibility).toMatchObject({ usableBy: '>=5.1.0 <6.0.0' });
    expect(r.warnings.join('\n')).toContain(`dropped 127.0.0.232:${old.port} (3.6.1)`);
    expect(r.sources[0]?.dropped.at(-1)?.reason).toMatch(/ggml-rpc 3\.6\.1: no single client can use it/);
    // An explicit client is judged exactly as llama.cpp does.
    const exact = await resolveBackends({ sources: ['config'], configPath: file, rpcVersion: '3.6.1' });
    expect(exact.backends.map((x) => x.rpc?.protocol)).toEqual(['3.6.1']);
    // So is one named in the config file.
    const named = configFile([`rpc-version 5.0.9`, `127.0.0.230:${a.port}`, `127.0.0.231:${b.port}`]);
    const fromFile = await resolveBackends({ sources: ['config'], configPath: named });
    expect(fromFile.backends.map((x) => x.rpc?.protocol)).toEqual(['5.0.0']);
  });

  it('names a protocol newer than it knows instead of calling the server something else', async () => {
    const fork = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.233', version: [9, 2, 0] });
    for (const engine of ['native', 'js'] as const) {
      const r = await probe('127.0.0.233', fork.port, { engine, service: 'ggml-rpc' });
      expect(r).toMatchObject({
        service: 'ggml-rpc',
        health: 'serving',
        rpc: { protocol: '9.2.0', usableBy: '>=9.2.0 <10.0.0' },
      });
      expect(r.reason).toContain('newer than this probe knows (up to 7.x); devices not queried');
    }
  });
});
