// DNS rebinding against serve, in Debian's chromium (issue 18): a page from another origin,
// http://rebind.test:PORT, whose name then leads to serve, read the backend list. Here chromium
// resolves rebind.test to 127.0.181.2, where the attacker's server answers the first
// connection with its page (and closes it, as a rebinding attacker does) and hands every later
// one to serve on 127.0.181.1 at the same port: the page's fetch reaches serve under the
// attacker's name. In the namespace, where 0.0.0.0 reaches nothing but lo.
import { connect, createServer, type Socket } from 'node:net';

import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';

import { configFile, tokenFile } from '../helpers/config.js';
import { get } from '../helpers/http.js';
import { enterIsolatedNamespace } from '../helpers/netns.js';
import { foreignEnv, requireTools, skipWithout } from '../helpers/tools.js';
import { isLog, startWatch, type LogLine } from '../helpers/watch.js';

const ATTACKER_PAGE = '<!doctype html><title>not a dashboard</title><p>hello';

/** The attacker's server on `host`:`port`: its page on the first connection, then serve's. */
async function rebindingServer(host: string, port: number, target: string): Promise<void> {
  let served = false;
  const server = createServer((socket: Socket) => {
    socket.on('error', () => {});
    if (served) {
      const upstream = connect({ host: target, port });
      upstream.on('error', () => socket.destroy());
      socket.pipe(upstream).pipe(socket);
      return;
    }
    served = true;
    socket.once('data', () => {
      socket.end(
        `HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: ${ATTACKER_PAGE.length}\r\nConnection: close\r\n\r\n${ATTACKER_PAGE}`,
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
}

describe.skipIf(skipWithout(['chromium', 'chromium']))('serve against DNS rebinding', () => {
  beforeAll(() => enterIsolatedNamespace());

  it('keeps the backend list from a page on another origin whose name leads to it, and serves its own origin', async () => {
    requireTools(['chromium', 'chromium']);
    const { chromium } = await import('playwright-core');
    const serve = startWatch(
      ['--sources', 'config', '--config', configFile([]), '--listen', '127.0.181.1:0', '--http-ports', '9'],
      {},
      'serve',
    );
    const url = (await serve.waitFor<LogLine>('serving', isLog('serving'))).url as string;
    const port = Number(new URL(url).port);
    await rebindingServer('127.0.181.2', port, '127.0.181.1');

    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--host-resolver-rules=MAP rebind.test 127.0.181.2'],
      env: foreignEnv() as Record<string, string>,
    });
    onTestFinished(() => browser.close());
    const page = await browser.newPage();
    const readBackends = () =>
      page.evaluate(async () => {
        try {
          const answer = await fetch('/api/backends');
          return { status: answer.status, body: await answer.text() };
        } catch (error) {
          return { status: 0, body: String(error) };
        }
      });

    await page.goto(`http://rebind.test:${port}/`);
    expect(await page.title()).toBe('not a dashboard');
    expect(await readBackends()).toEqual({ status: 421, body: '' });

    await page.goto(url);
    const own = await readBackends();
    expect(own.status).toBe(200);
    expect(JSON.parse(own.body)).toMatchObject({ schema: 1, backends: [] });
    serve.signal('SIGTERM');
    expect((await serve.exited).code).toBe(0);
  }, 40_000);

  it('on 0.0.0.0 answers a Host that is any address, and a name only when allowed', async () => {
    const token = 'every address, no stranger names';
    const serve = startWatch(
      [
        '--listen',
        '0.0.0.0:0',
        '--token-file',
        tokenFile(token),
        '--allow-host',
        'dash.example',
        '--sources',
        'config',
        '--config',
        configFile([]),
        '--http-ports',
        '9',
      ],
      {},
      'serve',
    );
    const url = ((await serve.waitFor<LogLine>('serving', isLog('serving'))).url as string).replace(
      '0.0.0.0',
      '127.0.181.1',
    );
    const port = new URL(url).port;
    const status = async (host: string) =>
      (await get(`${url}/api/backends`, { headers: { Host: host, Authorization: `Bearer ${token}` } })).status;
    for (const host of [`10.9.8.7:${port}`, `[2001:db8::7]:${port}`, `dash.example:${port}`, 'localhost']) {
      expect(await status(host), host).toBe(200);
    }
    for (const host of [`rebind.test:${port}`, `10.9.8.7.nip.io:${port}`]) {
      expect(await status(host), host).toBe(421);
    }
    serve.signal('SIGTERM');
    expect((await serve.exited).code).toBe(0);
  });
});
