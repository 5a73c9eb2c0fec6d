// The dashboard in a real browser: Debian's chromium driven by playwright-core, in the
// namespace. A backend dropped with nft turns DOWN on the open page within the hysteresis
// window, without a reload, and comes back UP; the page works with JavaScript off; its
// strict CSP lets its own script and style run and nothing else. A screenshot is saved to
// test-artifacts/dashboard.png.
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';

import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { clearFirewall, enterIsolatedNamespace, setFirewall } from '../helpers/netns.js';
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
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.48' });
    const serve = startWatch(
      [
        '--sources',
        'config',
        '--config',
        configFile([`127.0.0.45:${a.port}`, `127.0.0.48:${b.port}`]),
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
    expect(await page.locator('thead th[scope="col"]').count()).toBe(8);
    const row = (host: string) =>
      page.locator('tbody tr', { has: page.locator(`th:text-matches("^${host.replace(/\./g, '\\.')}:")`) });
    expect(await row('127.0.0.45').locator('.badge').textContent()).toBe('UP');
    expect(await row('127.0.0.45').locator('meter').count()).toBe(1);
    await page.waitForFunction("document.getElementById('live')?.textContent === 'live'", undefined, {
      timeout: 5000,
    });
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
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });

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
    await noScript.close();

    serve.signal('SIGTERM');
    expect((await serve.exited).code).toBe(0);
  }, 60_000);
});
