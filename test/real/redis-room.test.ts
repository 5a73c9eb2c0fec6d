// Issue 19's one Redis room: registry changes in the one event vocabulary (the envelope on
// <prefix>watch-events) beside the deprecated <prefix>events, and a watcher's resolves over its
// live connection instead of a connection per cycle.
import { describe, expect, it } from 'vitest';

import { resolveBackends } from '../../lib/index.js';
import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { eventually } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';
import { isEvent, isLog, startWatch } from '../helpers/watch.js';

/** Connections the server has accepted since it started (INFO stats). */
async function connectionsReceived(client: ReturnType<Awaited<ReturnType<typeof startRedis>>['client']>) {
  const match = /^total_connections_received:(\d+)/m.exec(await client.info('stats'));
  if (!match) throw new Error('INFO stats has no total_connections_received');
  return Number(match[1]);
}

describe('one Redis room', () => {
  it('publishes each registry change as an envelope on <prefix>watch-events, and in the old shape on <prefix>events', async () => {
    const redis = await startRedis();
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.197' });
    const listener = redis.client();
    const heard: { channel: string; message: Record<string, unknown> }[] = [];
    await listener.subscribe('scan-backends:events', 'scan-backends:watch-events');
    listener.on('message', (channel: string, message: string) => heard.push({ channel, message: JSON.parse(message) }));
    const file = configFile([`127.0.0.197:${peer.port}`]);
    await resolveBackends({ sources: ['config'], configPath: file, redisUrl: redis.url });
    await resolveBackends({ sources: ['config'], configPath: file, redisUrl: redis.url });
    await peer.close();
    await resolveBackends({ sources: ['redis'], redisUrl: redis.url });
    expect(await eventually(() => heard.length >= 6)).toBe(true);

    const old = heard.filter((h) => h.channel === 'scan-backends:events').map((h) => h.message);
    expect(old.map((m) => `${m.type} ${m.host}`)).toEqual([
      'added 127.0.0.197',
      'updated 127.0.0.197',
      'removed 127.0.0.197',
    ]);
    const envelopes = heard.filter((h) => h.channel === 'scan-backends:watch-events').map((h) => h.message);
    expect(envelopes.map((m) => (m.registry as { type: string }).type)).toEqual(['added', 'updated', 'removed']);
    for (const [i, m] of envelopes.entries()) {
      expect(m.origin).toMatch(/^resolve@.+:\d+$/);
      // The envelope's `at` is when it was sent (what freshness is judged by), just after the change.
      expect((m.at as number) - (old[i]?.at as number)).toBeGreaterThanOrEqual(0);
      expect((m.at as number) - (old[i]?.at as number)).toBeLessThan(5000);
      expect(m.event).toBeUndefined();
      expect(m.sig).toBeUndefined();
    }
    expect(envelopes[0]?.registry).toEqual({
      type: 'added',
      host: '127.0.0.197',
      port: peer.port,
      sources: ['config'],
    });
    expect(envelopes[2]?.registry).toMatchObject({ type: 'removed', host: '127.0.0.197', port: peer.port });
    expect(typeof (envelopes[2]?.registry as { reason?: unknown }).reason).toBe('string');
  });

  it("a watcher's resolves record through its own live connection: no new connection per cycle", async () => {
    const redis = await startRedis();
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.198' });
    const client = redis.client();
    await client.ping();
    const w = startWatch([
      '--sources',
      'config',
      '--config',
      configFile([`127.0.0.198:${peer.port}`]),
      '--redis',
      redis.url,
      '--interval',
      '300ms',
      '--log-level',
      'debug',
    ]);
    await w.waitFor('added .198', isEvent('added', '127.0.0.198'));
    const resolves = () => w.logs.filter(isLog('resolve done')).length;
    const [before, resolvedBefore] = [await connectionsReceived(client), resolves()];
    expect(await eventually(() => resolves() >= resolvedBefore + 5, 15_000)).toBe(true);
    const opened = (await connectionsReceived(client)) - before;
    console.log(`figure: ${resolves() - resolvedBefore} resolves of a watcher opened ${opened} Redis connection(s)`);
    expect(opened).toBe(0);
    expect(await client.hget(`scan-backends:backend:127.0.0.198:${peer.port}`, 'sources')).toBe('["config"]');
  }, 30_000);
});
