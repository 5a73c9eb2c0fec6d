// The dashboard's fragments: the Coordinator section (what run's supervisor says, escaped, the
// state in words), each backend's row and last hour, the cluster totals, the memory chart, the
// dropped servers.
import { describe, expect, it } from 'vitest';

import {
  backendsFragment,
  coordinatorFragment,
  droppedFragment,
  historyStrip,
  memoryFragment,
  renderPage,
  totalsFragment,
} from '../../lib/serve/dashboard.js';
import type { WatchedBackend, WatchEvent, WatchHistory, WatchSnapshot } from '../../lib/watch/types.js';
import { watchedBackend } from '../helpers/watched-backend.js';

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

const GiB = 2 ** 30;
const NOW = '2026-01-01T01:00:00.000Z';
const minutesAgo = (m: number) => new Date(Date.parse(NOW) - m * 60_000).toISOString();

const watched = (host: string, over: Partial<WatchedBackend> = {}) =>
  watchedBackend(host, { at: NOW, freeBytes: 22.5 * GiB }, over);

/** A strip's bars as [state, minute], in minute order: each state's path draws a bar 10 units apart. */
function minutes(strip: string): [string, number][] {
  const bars = [...strip.matchAll(/<path class="(\w+)" d="([^"]+)"/g)].flatMap((path) =>
    [...(path[2] as string).matchAll(/M(\d+) 0h9v24h-9z/g)].map((bar): [string, number] => [
      path[1] as string,
      Number(bar[1]) / 10,
    ]),
  );
  return bars.sort((a, b) => a[1] - b[1]);
}

describe('the backends and their pictures', () => {
  it('draws the last hour a bar per minute, each the worst state in it, and says the time in each state', () => {
    const html = historyStrip(
      [
        { state: 'up', from: minutesAgo(90) },
        { state: 'down', from: minutesAgo(10.5) },
        { state: 'busy', from: minutesAgo(10.2) },
        { state: 'up', from: minutesAgo(5) },
      ],
      { now: NOW, windowMs: 3_600_000 },
    );
    const bars = minutes(html);
    expect(bars).toHaveLength(60);
    // Minute 49 (10.5 to 9.5 min ago) saw down and busy: down. Then busy to 5 min ago.
    expect(bars.filter(([state]) => state === 'down')).toEqual([['down', 49]]);
    expect(bars.filter(([state]) => state === 'busy').map(([, i]) => i)).toEqual([50, 51, 52, 53, 54]);
    expect(bars.filter(([state]) => state === 'up')).toHaveLength(54);
    expect(html).toContain('aria-label="last hour: down 18 s, busy 5 min, up 55 min"');
  });

  it('leaves the minutes before the watcher knew a backend empty', () => {
    const html = historyStrip([{ state: 'up', from: minutesAgo(2.5) }], { now: NOW, windowMs: 3_600_000 });
    expect(minutes(html)).toEqual([
      ['up', 57],
      ['up', 58],
      ['up', 59],
    ]);
    expect(historyStrip([], { now: NOW, windowMs: 3_600_000 })).toContain('not seen yet');
  });

  it('shows a backend that went down this instant: the last minute red, "down 0 s"', () => {
    const html = historyStrip(
      [
        { state: 'up', from: minutesAgo(3) },
        { state: 'down', from: NOW },
      ],
      { now: NOW, windowMs: 3_600_000 },
    );
    expect(minutes(html)).toEqual([
      ['up', 57],
      ['up', 58],
      ['down', 59],
    ]);
    expect(html).toContain('<small class="strip-words">down 0 s, up 3 min</small>');
  });

  it('says the reason once: in State when not plainly up, never in Last change', () => {
    const down = watched('127.0.0.2', {
      state: 'down',
      lastEventId: 7,
      lastCheck: { at: NOW, check: 'health', ok: false, saw: 'no answer within 300 ms' },
    });
    const event: WatchEvent = {
      schema: 1,
      id: 7,
      time: new Date().toISOString(),
      type: 'down',
      backend: down,
      cause: { check: 'health', saw: 'no answer within 300 ms' },
    };
    const html = backendsFragment({ ...snapshot(), backends: [down] }, new Map([[7, event]]), history());
    expect(html.split('no answer within 300 ms')).toHaveLength(2);
    expect(html).toMatch(/<td data-label="Last change">down \d+ s ago<\/td>/);
    const up = watched('127.0.0.1', { lastCheck: { at: NOW, check: 'health', ok: true, saw: 'answered <HELLO>' } });
    const upHtml = backendsFragment({ ...snapshot(), backends: [up] }, new Map(), history());
    expect(upHtml).toContain('<span class="badge up" title="answered &lt;HELLO&gt;">UP</span>');
    expect(upHtml).not.toContain('class="reason"');
  });

  it('shows free memory as the bar, in words, and the usable set totals', () => {
    const a = watched('127.0.0.1');
    const b = watched('127.0.0.2', {
      rpc: {
        ...watched('x').rpc!,
        devices: [
          { index: 0, freeBytes: 1 * GiB, totalBytes: 16 * GiB },
          { index: 1, freeBytes: 2 * GiB, totalBytes: 16 * GiB },
        ],
      },
    });
    const leftOut = watched('127.0.0.3', { usable: false, leftOut: 'protocol 2.0.0: another group' });
    const down = watched('127.0.0.4', { state: 'down', usable: false });
    const backends = backendsFragment({ ...snapshot(), backends: [a, b] }, new Map(), history());
    expect(backends).toContain(`value="${22.5 * GiB}"`);
    expect(backends).toContain('<strong class="free">22.5 GiB</strong> free of <span class="amount">24.0 GiB</span>');
    expect(backends).toContain('dev 1: <strong class="free">2.0 GiB</strong>');
    const totals = totalsFragment({ ...snapshot(), backends: [a, b, leftOut, down] });
    expect(
      totals
        .replace(/<[^>]+>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim(),
    ).toBe(
      'Servers up 3 of 4, 2 usable Devices 3 on the usable servers Free memory 25.5 GiB free of 56.0 GiB on the usable servers',
    );
  });

  it('charts the usable memory as steps from the first sample to now, with the total dashed', () => {
    expect(memoryFragment(history())).toContain('No usable server with known memory yet');
    const html = memoryFragment(
      history({
        now: NOW,
        memory: [
          { at: minutesAgo(30), freeBytes: 40 * GiB, totalBytes: 48 * GiB, servers: 2 },
          { at: minutesAgo(10), freeBytes: 12 * GiB, totalBytes: 24 * GiB, servers: 1 },
        ],
      }),
    );
    expect(html).toContain('viewBox="0 0 1800.0 100"');
    expect(html).toContain('points="0.0,16.67 1200.0,16.67 1200.0,75.00 1800.0,75.00"');
    expect(html).toContain(
      '<polyline class="total" vector-effect="non-scaling-stroke" points="0.0,0.00 1200.0,0.00 1200.0,50.00 1800.0,50.00"',
    );
    expect(html).toContain('12.0 GiB free of 24.0 GiB now, lowest 12.0 GiB');
    expect(html).toContain('<small>30 min ago</small>');
  });

  it('folds the dropped servers, each with its source and why, escaped', () => {
    expect(droppedFragment(undefined)).toBe('');
    const html = droppedFragment([
      { host: '1.1.1.1', port: 50052, source: 'config', reason: 'a public address: never connected to' },
      { host: '<b>x', port: 0, source: 'redis', reason: 'misshapen <entry>' },
    ]);
    expect(html).toMatch(/^<details><summary>2 servers named but not followed<\/summary>/);
    expect(html).toContain(
      '<li><code>1.1.1.1:50052</code> <small>(config)</small>: a public address: never connected to</li>',
    );
    expect(html).toContain('<li><code>&lt;b&gt;x</code> <small>(redis)</small>: misshapen &lt;entry&gt;</li>');
  });
});
