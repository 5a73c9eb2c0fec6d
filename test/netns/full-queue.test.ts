// A held ggml-rpc server's accept queue has two slots; once they are full the kernel drops
// further SYNs and a connect times out. A connect timeout to an address that a running
// coordinator names is therefore "busy, its accept queue is full", never dead; one nobody
// names is dropped. The full queue is made with nft (SYNs to .61 dropped) in the namespace.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { resolveBackends } from '../../lib/resolver/index.js';
import { configFile } from '../helpers/config.js';
import { fakeCoordinator } from '../helpers/coordinator.js';
import { clearFirewall, enterIsolatedNamespace, setFirewall } from '../helpers/netns.js';

describe('a connect timeout to a vouched server', () => {
  beforeAll(() => {
    enterIsolatedNamespace();
    setFirewall(`table inet scan_backends_test {
  chain input {
    type filter hook input priority 0;
    ip daddr { 127.0.0.61, 127.0.0.62 } tcp dport 50052 drop
  }
}`);
  });
  afterAll(() => clearFirewall());

  it('is busy with a full accept queue when a coordinator names it, and dropped when nobody does', async () => {
    await fakeCoordinator(['-m', 'model.gguf', '--rpc', '127.0.0.61:50052']);
    const config = configFile(['127.0.0.61', '127.0.0.62']);
    const r = await resolveBackends({ sources: ['config'], configPath: config, timeoutMs: 300 });
    expect(r.backends).toEqual([
      expect.objectContaining({
        host: '127.0.0.61',
        port: 50052,
        verified: true,
        health: 'busy',
        evidence: 'coordinator',
      }),
    ]);
    expect(r.backends[0]?.reason).toMatch(
      /^busy: no answer to the connect within 300 ms, its accept queue is full \(pid \d+ \(llama-server\) names it in --rpc\)$/,
    );
    expect(r.sources[0]?.dropped).toEqual([{ host: '127.0.0.62', port: 50052, reason: 'no answer within 300 ms' }]);
  });
});
