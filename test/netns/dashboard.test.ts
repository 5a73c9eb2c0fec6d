// The dashboard in a real browser: Debian's chromium driven by playwright-core, in the
// namespace. A backend dropped with nft turns DOWN on the open page within the hysteresis
// window, without a reload, and comes back UP; the page works with JavaScript off; its
// strict CSP lets its own script and style run and nothing else. The page fits a phone (no
// sideways scroll at 360 and 390 px), says what its memory bar means, and its history strip
// shows the drop. Screenshots at 360, 390, 1024, 1280 and 2560 px are saved to
// test-artifacts/dashboard-<width>.png.
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import type { Locator } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';

import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import type { WatchHistory } from '../../lib/watch/types.js';
import { clearFirewall, enterIsolatedNamespace, setFirewall } from '../helpers/netns.js';
import { valid } from '../helpers/schemas.js';
import { foreignEnv, requireTools, skipWithout } from '../helpers/tools.js';
import { isLog, startWatch, type LogLine } from '../helpers/watch.js';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

describe.skipIf(skipWithout(['chromium', 'chromium']))('the dashboard in chromium', () => {
  beforeAll(() => enterIsolatedNamespace());
  afterAll(() => clearFirewall());

  it('shows the backends, turns one DOWN and back UP live, and is whole without JavaScript', async () => {
    requireTools(['chromium', 'chromium']);
    const { chromium } = await import('playwright-core');
    const a = await ggmlRpcPeer({
      generation: '5.x',
      host: '127.0.0.45',
      devices: [{ freeBytes: 9e9, totalBytes: 24e9 }],
    });
    const b = await ggmlRpcPeer({
      generation: '5.x',
      host: '127.0.0.48',
      devices: [
        { freeBytes: 22.5 * 2 ** 30, totalBytes: 24 * 2 ** 30 },
        { freeBytes: 1 * 2 ** 30, totalBytes: 16 * 2 ** 30 },
      ],
    });
    const serve = startWatch(
      [
        '--sources',
        'config',
        '--config',
        // Two the watcher drops, never connecting: a placeholder, and a public address (the
        // namespace has no route out anyway).
        configFile([`127.0.0.45:${a.port}`, `127.0.0.48:${b.port}`, '127.0.0.50:0', '1.1.1.1:50052']),
        '--listen',
        '127.0.0.1:0',
        '--health-interval',
        '200ms',
        '--timeout',
        '300',
        '--probe-timeout',
        '500',
        '--http-ports',
        '9',
      ],
      {},
      'serve',
    );
    const url = (await serve.waitFor<LogLine>('serving', isLog('serving'))).url as string;
    await serve.waitFor('first resolve', isLog('first resolve done'));

    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox'],
      env: foreignEnv() as Record<string, string>,
    });
    onTestFinished(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(url);
    // An accessible table: a caption, column headers, the state in words.
    expect(await page.textContent('caption')).toMatch(/^RPC backends/);
    expect(await page.locator('thead th[scope="col"]').allTextContents()).toEqual([
      'Backend',
      'State',
      'Free memory',
      'Last hour',
      'Protocol',
      'Sources',
      'RTT',
      'Flaps',
      'Last change',
    ]);
    const row = (host: string) =>
      page.locator('tbody tr', { has: page.locator(`th:text-matches("^${host.replace(/\./g, '\\.')}:")`) });
    expect(await row('127.0.0.45').locator('.badge').textContent()).toBe('UP');
    // The bar is free memory, and says so: the legend and each device's words.
    expect(await page.textContent('#legend')).toMatch(/Bars show free device memory/);
    expect(
      await row('127.0.0.45')
        .locator('meter')
        .evaluate((m) => (m as unknown as { value: number }).value),
    ).toBe(9e9);
    const words = async (cell: Locator) => ((await cell.textContent()) ?? '').replace(/\s+/g, ' ').trim();
    expect(await words(row('127.0.0.45').locator('td.memory'))).toBe('8.4 GiB free of 22.4 GiB');
    expect(await words(row('127.0.0.48').locator('td.memory'))).toBe(
      'dev 0: 22.5 GiB free of 24.0 GiB dev 1: 1.0 GiB free of 16.0 GiB',
    );
    // The cluster's totals: both up and usable, three devices, their free memory summed.
    expect(await page.textContent('#totals')).toMatch(
      /Servers up\s*2 of 2, 2 usable\s*Devices\s*3 on the usable servers\s*Free memory\s*31\.9 GiB free of 62\.4 GiB/,
    );
    expect(await page.locator('#memory svg polyline.line').count()).toBe(1);
    expect(await page.textContent('#memory figcaption')).toMatch(
      /^Free memory of the usable set: 31\.9 GiB free of 62\.4 GiB now/,
    );
    // The servers named but not followed: folded, each with why.
    expect(await page.textContent('#dropped summary')).toBe('2 servers named but not followed');
    expect(await page.locator('#dropped details').getAttribute('open')).toBeNull();
    const dropped = await page.locator('#dropped li').allTextContents();
    expect(dropped).toHaveLength(2);
    expect(dropped.find((d) => d.startsWith('127.0.0.50 (config)'))).toMatch(/placeholder/);
    expect(dropped.find((d) => d.startsWith('1.1.1.1:50052 (config)'))).toMatch(/a public address: never connected to/);
    await page.waitForFunction("document.getElementById('live')?.textContent === 'live'", undefined, {
      timeout: 5000,
    });
    // Unfolded, the list stays so through the refreshes to come.
    await page.click('#dropped summary');
    // A marker a reload would lose.
    await page.evaluate('window.noReload = true');

    setFirewall(`table inet scan_backends_test {
  chain input {
    type filter hook input priority 0;
    ip daddr 127.0.0.48 tcp dport ${b.port} drop
  }
}`);
    await row('127.0.0.48').locator('.badge', { hasText: 'DOWN' }).waitFor({ timeout: 10_000 });
    expect(await page.evaluate('window.noReload')).toBe(true);
    expect(await page.textContent('#summary')).toMatch(/1 up, 0 busy, 1 down/);
    expect(await page.locator('#events li').first().textContent()).toMatch(/down 127\.0\.0\.48:/);
    // The reason once per row: in State, not again in Last change.
    const reason = (await row('127.0.0.48').locator('.reason').textContent()) as string;
    expect(reason.length).toBeGreaterThan(0);
    expect(await row('127.0.0.48').locator('td[data-label="Last change"]').textContent()).toMatch(/^down \d+ s ago$/);
    expect((await row('127.0.0.48').textContent())?.split(reason).length).toBe(2);
    // The chart: the usable set lost a server, its free memory and its total fell.
    await page
      .locator('#memory figcaption', { hasText: /8\.4 GiB free of 22\.4 GiB now, lowest 8\.4 GiB/ })
      .waitFor({ timeout: 5000 });
    expect(await page.locator('#dropped details').getAttribute('open')).toBe('');
    // The strip shows the drop: the current minute's bar is down, the other backend's is not.
    await row('127.0.0.48').locator('svg.strip path.down').waitFor({ timeout: 5000 });
    expect(await row('127.0.0.45').locator('svg.strip path.down').count()).toBe(0);
    expect(await row('127.0.0.48').locator('.strip-words').textContent()).toMatch(/^down \d+ s, up \d+ s$/);

    // The API says what the page shows: the dropped servers, the history with the drop.
    const doc = (await (await fetch(`${url}/api/backends`)).json()) as { dropped: unknown[] };
    expect(valid('serve-backends', doc)).toBe('valid');
    expect(doc.dropped).toHaveLength(2);
    const history = (await (await fetch(`${url}/api/history`)).json()) as WatchHistory;
    expect(valid('serve-history', history)).toBe('valid');
    expect(history.backends.map((h) => h.spans.map((x) => x.state))).toEqual([['up'], ['up', 'down']]);
    expect(history.memory.at(-1)).toMatchObject({ freeBytes: 9e9, totalBytes: 24e9, servers: 1 });

    // Every width: no sideways scroll, a screenshot as an artifact.
    mkdirSync(ARTIFACTS, { recursive: true });
    for (const width of [360, 390, 1024, 1280, 2560]) {
      await page.setViewportSize({ width, height: width < 1000 ? 844 : width > 2000 ? 1440 : 900 });
      const scroll = (await page.evaluate('[document.documentElement.scrollWidth, window.innerWidth]')) as number[];
      // Saved first: a failing width is there to look at.
      await page.screenshot({ path: `${ARTIFACTS}dashboard-${width}.png`, fullPage: true });
      expect(scroll[0], `scroll width at ${width} px`).toBeLessThanOrEqual(scroll[1] as number);
      // Nor does the table scroll in its own box.
      const table = (await page.evaluate(
        "[document.querySelector('.scroll').scrollWidth, document.querySelector('.scroll').clientWidth]",
      )) as number[];
      expect(table[0], `table width at ${width} px`).toBeLessThanOrEqual(table[1] as number);
    }
    await page.setViewportSize({ width: 1280, height: 900 });

    clearFirewall();
    await row('127.0.0.48').locator('.badge', { hasText: 'UP' }).waitFor({ timeout: 10_000 });
    expect(await page.evaluate('window.noReload')).toBe(true);
    // Nothing the CSP refused, no script error.
    expect(problems).toEqual([]);

    // JavaScript off: the server-rendered page is the whole table.
    const noScript = await browser.newContext({ javaScriptEnabled: false });
    const still = await noScript.newPage();
    await still.goto(url);
    expect(await still.locator('tbody tr').count()).toBe(2);
    expect(await still.locator('tbody .badge').allTextContents()).toEqual(['UP', 'UP']);
    // The pictures are the server's: the strip still shows the drop, the chart is drawn.
    expect(await still.locator('tbody tr').nth(1).locator('svg.strip path.down').count()).toBeGreaterThanOrEqual(1);
    expect(await still.locator('#memory svg polyline.line').count()).toBe(1);
    expect(await still.locator('#dropped li').count()).toBe(2);
    await noScript.close();

    serve.signal('SIGTERM');
    expect((await serve.exited).code).toBe(0);
  }, 60_000);
});
