// The list a watcher hands on is one a single llama.cpp client can use: the usable set of
// watch and serve, --on-change and `resolve --from` apply resolve's compatibility rule, and a
// server left out for its protocol stays in the view, up, marked with why. Real ggml-rpc peers
// of two protocol generations (5.0.0 and 2.0.0) on 127.0.4.x.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { get } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { valid } from '../helpers/schemas.js';
import { isEvent, isLog, startWatch, type LogLine } from '../helpers/watch.js';

const PORT = 50052;
const [V5, OLD_A, OLD_B] = ['127.0.4.45', '127.0.4.47', '127.0.4.48'];
const at = (host: string) => `${host}:${PORT}`;

interface Doc {
  rpc: string;
  backends: { host: string; state: string; status: string; usable?: boolean; leftOut?: string }[];
}

function serve(config: string, extra: string[], env: NodeJS.ProcessEnv = {}) {
  const w = startWatch(
    [
      '--sources',
      'config',
      '--config',
      config,
      '--listen',
      '127.0.0.1:0',
      '--interval',
      '500ms',
      '--health-interval',
      '200ms',
      '--timeout',
      '300',
      '--probe-timeout',
      '500',
      '--http-ports',
      '9',
      ...extra,
    ],
    env,
    'serve',
  );
  return w;
}

describe('the usable list is one client can use', () => {
  it('follows the group resolve would pick as it changes, and never hands on two majors', async () => {
    await ggmlRpcPeer({ generation: '5.x', host: V5, port: PORT });
    await ggmlRpcPeer({ generation: '2.x', host: OLD_B, port: PORT });
    const config = configFile([at(V5), at(OLD_A), at(OLD_B)]);
    const dir = mkdtempSync(join(tmpdir(), 'sb-compat-'));
    const lists = join(dir, 'lists');
    const w = serve(config, [
      '--on-change',
      `sh -c 'echo "$SCAN_BACKENDS_RPC" >> ${lists}'`,
      '--on-change-shell',
      '--settle',
      '0',
    ]);
    const url = (await w.waitFor<LogLine>('serving', isLog('serving'))).url as string;
    await w.waitFor('added .48', isEvent('added', OLD_B));
    const backends = async () => JSON.parse((await get(`${url}/api/backends`)).body) as Doc;

    // One server of each major: the tie goes to the newest major, not to the most memory.
    expect(await eventually(async () => (await backends()).rpc === at(V5), 5000)).toBe(true);
    let doc = await backends();
    expect(valid('serve-backends', doc)).toBe('valid');
    expect(doc.backends.map((b) => [b.host, b.state, b.status, b.usable])).toEqual([
      [V5, 'up', 'up', true],
      [OLD_B, 'up', 'left-out', false],
    ]);
    expect(doc.backends[1]?.leftOut).toMatch(/^ggml-rpc 2\.0\.0: no single client can use it beside the 1 server/);

    // A second 2.0.0 server comes up: the 2.x group wins, and 5.0.0 is left out, still up.
    await ggmlRpcPeer({ generation: '2.x', host: OLD_A, port: PORT });
    const twoOld = `${at(OLD_A)},${at(OLD_B)}`;
    expect(await eventually(async () => (await backends()).rpc === twoOld, 8000)).toBe(true);
    doc = await backends();
    expect(doc.backends.map((b) => [b.host, b.status])).toEqual([
      [V5, 'left-out'],
      [OLD_A, 'up'],
      [OLD_B, 'up'],
    ]);
    expect(doc.backends[0]?.leftOut).toMatch(/^ggml-rpc 5\.0\.0: no single client can use it beside the 2 servers/);

    // resolve --from hands on the same list.
    const from = await runCli(['resolve', '--from', url, '--format', 'rpc']);
    expect(from.stdout.trim()).toBe(twoOld);

    // --on-change got each list the watcher made, none mixing majors, the last one the 2.x pair.
    expect(
      await eventually(
        () => existsSync(lists) && readFileSync(lists, 'utf8').trim().split('\n').at(-1) === twoOld,
        8000,
      ),
    ).toBe(true);
    for (const list of readFileSync(lists, 'utf8').trim().split('\n')) {
      const hosts = list.split(',').map((hp) => hp.split(':')[0]);
      const majors = new Set(hosts.map((h) => (h === V5 ? 5 : 2)));
      expect(majors.size, `on-change list ${list}`).toBeLessThanOrEqual(1);
    }

    w.signal('SIGTERM');
    expect((await w.exited).code).toBe(0);
  }, 45_000);

  // The client named by the flag or by the environment: either way a health check judges no
  // client (a server of another protocol is alive), and the usable set judges that one.
  it.each([
    ['--rpc-version', 5, ['--rpc-version', '5.1.0'], {}],
    ['$SCAN_BACKENDS_RPC_VERSION', 6, [], { SCAN_BACKENDS_RPC_VERSION: '5.1.0' }],
  ])(
    'with %s judges every server against that client, keeping the others up but left out',
    async (_, net, extra, env) => {
      const [v5, oldA, oldB] = [5, 7, 8].map((n) => `127.0.4.${net}${n}`) as [string, string, string];
      await ggmlRpcPeer({ generation: '5.x', host: v5, port: PORT });
      await ggmlRpcPeer({ generation: '2.x', host: oldA, port: PORT });
      await ggmlRpcPeer({ generation: '2.x', host: oldB, port: PORT });
      const config = configFile([v5, oldA, oldB].map(at));
      const w = serve(config, extra, env);
      const url = (await w.waitFor<LogLine>('serving', isLog('serving'))).url as string;
      await w.waitFor('added the last', isEvent('added', oldB));
      const doc = JSON.parse((await get(`${url}/api/backends`)).body) as Doc;
      expect(doc.rpc).toBe(at(v5));
      expect(doc.backends.map((b) => [b.host, b.state, b.status])).toEqual([
        [v5, 'up', 'up'],
        [oldA, 'up', 'left-out'],
        [oldB, 'up', 'left-out'],
      ]);
      expect(doc.backends[1]?.leftOut).toMatch(/^ggml-rpc 2\.0\.0 does not match client 5\.1\.0/);
      // Left out is not down: no down event, however many health rounds pass.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(w.events.filter((e) => e.type === 'down')).toEqual([]);
      w.signal('SIGTERM');
      expect((await w.exited).code).toBe(0);
    },
    30_000,
  );
});
