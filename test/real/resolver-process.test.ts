// The process source with a real coordinator process. The only file in the host namespace
// that starts one, so other files' resolves never see it.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';
import { fakeCoordinator } from '../helpers/coordinator.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';

describe('the process source', () => {
  it('takes the backends of a running llama-server, drops its placeholder, and falls through to the config when it is gone', async () => {
    await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.171', port: 50052 });
    const config = join(mkdtempSync(join(tmpdir(), 'sb-config-')), 'rpc_backends.conf');
    writeFileSync(config, '127.0.0.171\n');
    const stop = await fakeCoordinator(['--rpc', '127.0.0.171:50052,coordinator:0']);

    const live = await runCli([
      'resolve',
      '--sources',
      'process,config',
      '--config',
      config,
      '--format',
      'rpc',
      '--explain',
    ]);
    expect(live.stdout).toBe('127.0.0.171:50052\n');
    expect(live.code).toBe(0);
    expect(live.stderr).toContain('process: ok, 2 named (1 coordinator process)');
    expect(live.stderr).toContain('dropped coordinator:0: port 0: a placeholder, not a backend');
    expect(live.stderr).toMatch(/config: skipped/);

    await stop();
    const gone = await runCli(['resolve', '--sources', 'process,config', '--config', config, '--format', 'json']);
    const out = JSON.parse(gone.stdout);
    expect(out.sources.map((s: { name: string; status: string }) => `${s.name} ${s.status}`)).toEqual([
      'process empty',
      'config ok',
    ]);
    expect(out.backends).toEqual([expect.objectContaining({ host: '127.0.0.171', port: 50052, sources: ['config'] })]);
  });
});
