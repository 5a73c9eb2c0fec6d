// The seed scenario end to end: a coordinator started with --rpc .45,.48 and a placeholder;
// a config file listing .45, .48 and a switched-off .154; a Redis holding a stale .99 that
// drops SYNs. The default chain answers from the process; --merge --explain shows every drop,
// and .99 leaves Redis.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';
import { fakeCoordinator } from '../helpers/coordinator.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { clearFirewall, dropAllBut, enterIsolatedNamespace } from '../helpers/netns.js';
import { startRedis } from '../helpers/redis.js';

describe('resolve in the seed scenario', () => {
  beforeAll(() => {
    enterIsolatedNamespace();
    dropAllBut(50052, ['127.0.0.45', '127.0.0.48', '127.0.0.154']);
  });
  afterAll(() => clearFirewall());

  it('answers from the coordinator, and --merge --explain shows .154 closed and the stale .99 gone from Redis', async () => {
    await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.45', port: 50052 });
    await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.48', port: 50052 });

    await fakeCoordinator(['-m', 'model.gguf', '--rpc', '127.0.0.45:50052,127.0.0.48:50052,coordinator:0']);
    const dir = mkdtempSync(join(tmpdir(), 'sb-seed-'));
    const config = join(dir, 'rpc_backends.conf');
    writeFileSync(config, '# the rack\n127.0.0.45\n127.0.0.48:50052\n127.0.0.154   # switched off today\n');

    const redis = await startRedis();
    const client = redis.client();
    const stale = 'scan-backends:backend:127.0.0.99:50052';
    await client.hset(stale, { host: '127.0.0.99', port: '50052', sources: '["scan"]', firstSeen: '1', lastSeen: '1' });

    const env = { SCAN_BACKENDS_CONFIG: config, SCAN_BACKENDS_REDIS: redis.url };
    const chain = await runCli(['resolve', '--format', 'rpc', '--timeout', '500'], { env });
    expect(chain.code).toBe(0);
    expect(chain.stdout).toBe('127.0.0.45:50052,127.0.0.48:50052\n');

    const merged = await runCli(['resolve', '--merge', '--explain', '--format', 'json', '--timeout', '500'], { env });
    expect(merged.code).toBe(0);
    const out = JSON.parse(merged.stdout);
    expect(out.backends.map((b: { host: string; sources: string[] }) => `${b.host} ${b.sources.join('+')}`)).toEqual([
      '127.0.0.45 process+config+redis',
      '127.0.0.48 process+config+redis',
    ]);
    expect(merged.stderr).toContain('dropped coordinator:0: port 0: a placeholder, not a backend');
    expect(merged.stderr).toContain('dropped 127.0.0.154:50052: closed (connection refused)');
    expect(merged.stderr).toContain('dropped 127.0.0.99:50052: no answer within 500 ms');
    expect(await client.exists(stale)).toBe(0);
    expect(await client.exists('scan-backends:backend:127.0.0.45:50052')).toBe(1);
  });
});
