// A config file caught half-written removes nothing: an edit is used only once two reads a
// moment apart agree. The writer here stops halfway for 300 ms, as a slow editor or a copy
// over the network does; the watcher's first read after the change sees half the file.
import { writeFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import type { WatchEvent } from '../../lib/watch/types.js';
import { isEvent, isLog, startWatch } from '../helpers/watch.js';

describe('a config edit', () => {
  it('read while it is being written removes nothing; a finished edit that removes a line does', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.4.80' });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.4.81' });
    const lines = [`127.0.4.80:${a.port}`, `127.0.4.81:${b.port}`];
    const config = configFile(lines);
    // Resolves come only from config edits; health checks keep quiet.
    const w = startWatch(['--sources', 'config', '--config', config, '--interval', '1h', '--health-interval', '1h']);
    await w.waitFor('added .81', isEvent('added', '127.0.4.81'));

    // Half the file, a pause, then the rest: the same content as before, written slowly.
    writeFileSync(config, `${lines[0]}\n`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    writeFileSync(config, `${lines.join('\n')}\n`);
    await w.waitFor(
      'the half-written file noticed',
      isLog('config file is changing; keeping the last good version until it settles'),
    );
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(w.events.filter((e) => e.type !== 'added').map((e) => [e.type, e.backend.host])).toEqual([]);

    // A finished edit that drops a line removes its backend, once the file is stable.
    writeFileSync(config, `${lines[0]}\n`);
    const removed = await w.waitFor<WatchEvent>('removed .81', isEvent('removed', '127.0.4.81'));
    expect(removed.cause.saw).toMatch(/no source names it any more \(config\)/);
    w.signal('SIGTERM');
    expect((await w.exited).code).toBe(0);
  }, 30_000);
});
