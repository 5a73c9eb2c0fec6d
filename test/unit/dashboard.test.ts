// The dashboard's Coordinator section: what run's supervisor says, escaped, with the state in words.
import { describe, expect, it } from 'vitest';

import { coordinatorFragment, renderPage } from '../../lib/serve/dashboard.js';
import type { WatchHistory, WatchSnapshot } from '../../lib/watch/types.js';

const snapshot = (coordinator?: WatchSnapshot['coordinator']): WatchSnapshot => ({
  schema: 1,
  watcher: { id: 'w', startedAt: new Date(0).toISOString(), cycles: 1, healthRounds: 0, ready: true },
  backends: [],
  rpc: '',
  lastEventId: 0,
  ...(coordinator ? { coordinator } : {}),
});

const history = (over: Partial<WatchHistory> = {}): WatchHistory => ({
  schema: 1,
  now: new Date().toISOString(),
  windowMs: 3_600_000,
  backends: [],
  memory: [],
  ...over,
});

describe('the Coordinator section', () => {
  it('says the state in words, the pid, the servers, the time to ready and restarts; a reason is escaped', () => {
    const html = coordinatorFragment({
      state: 'crash-loop',
      since: new Date().toISOString(),
      servers: ['127.0.0.1:50052', '127.0.0.2:50052'],
      restarts: 3,
      lastMsToReady: 1240,
      reason: 'exited (code 1): <script>alert(1)</script>',
    });
    expect(html).toContain('CRASH LOOP');
    expect(html).toContain('<code>127.0.0.1:50052,127.0.0.2:50052</code>');
    expect(html).toContain('1.2 s');
    expect(html).toContain('<dd>3</dd>');
    expect(html).toContain('none running');
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it('is on the page only while a coordinator is supervised', () => {
    expect(renderPage(snapshot(), new Map(), [], [], history())).not.toContain('Coordinator');
    const page = renderPage(
      snapshot({ state: 'ready', since: new Date().toISOString(), pid: 42, restarts: 0 }),
      new Map(),
      [],
      [],
      history(),
    );
    expect(page).toContain('<h2>Coordinator</h2>');
    expect(page).toMatch(/<dt>PID<\/dt><dd>42<\/dd>/);
    expect(page).toContain('READY');
  });
});
