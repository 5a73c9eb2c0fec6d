// No source can make the resolver connect where the user did not ask: registry entries and
// config lines naming public addresses are dropped unless --allow-public. Run in the isolated
// namespace, so even a broken guard could send nothing beyond loopback.

import { beforeAll, describe, expect, it } from 'vitest';

import { parseAddress } from '../../lib/common/addresses.js';
import { resolveBackends } from '../../lib/resolver/index.js';
import { configFile } from '../helpers/config.js';
import { enterIsolatedNamespace } from '../helpers/netns.js';
import { startRedis } from '../helpers/redis.js';

describe('the public guard on resolver candidates', () => {
  beforeAll(() => enterIsolatedNamespace());

  it('drops public addresses from Redis and the config file, names resolving to them too', async () => {
    const redis = await startRedis('127.0.0.1');
    const c = redis.client();
    await c.hset('scan-backends:backend:8.8.8.8:50052', { host: '8.8.8.8', port: '50052' });
    await c.hset('scan-backends:backend:[2001:4860:4860::8888]:50052', { host: '2001:4860:4860::8888', port: '50052' });
    const file = configFile(['example.com:50052', '1.1.1.1']);
    const lookup = async (name: string) => (name === 'example.com' ? [parseAddress('93.184.215.14')!] : []);
    const r = await resolveBackends({
      sources: ['config', 'redis'],
      merge: true,
      configPath: file,
      redisUrl: redis.url,
      lookup,
      timeoutMs: 200,
    });
    expect(r.backends).toEqual([]);
    const dropped = r.sources.flatMap((s) => s.dropped.map((d) => `${d.host} ${d.reason}`));
    for (const host of ['example.com', '1.1.1.1', '8.8.8.8', '2001:4860:4860::8888']) {
      expect(dropped).toContain(
        `${host} a public address: never connected to unless allowed (--allow-public, allowPublic)`,
      );
    }
    // With the switch on they are candidates again (here, in a namespace with no route out).
    const allowed = await resolveBackends({
      sources: ['config'],
      configPath: file,
      lookup,
      timeoutMs: 200,
      allowPublic: true,
    });
    expect(allowed.sources[0]?.dropped.map((d) => d.reason).join('\n')).not.toContain('a public address');
  });
});
