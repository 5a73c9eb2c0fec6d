// What serve checks in each request before it answers (issue 18): the Host, against DNS
// rebinding (a page on another origin whose name resolves to 127.0.0.1 read the backend list),
// a malformed absolute URL (a 500), and HEAD /api/events (no headers, and a stream place held).
// Real serve process on 127.0.181.1; requests written byte for byte where a client library
// would not send them.
import { describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import { get, rawRequest, sse } from '../helpers/http.js';
import { isLog, startWatch, type LogLine } from '../helpers/watch.js';

async function startServe(extra: string[] = []): Promise<{ url: string; port: number }> {
  const serve = startWatch(
    ['--sources', 'config', '--config', configFile([]), '--listen', '127.0.181.1:0', '--http-ports', '9', ...extra],
    {},
    'serve',
  );
  const url = (await serve.waitFor<LogLine>('serving', isLog('serving'))).url as string;
  return { url, port: Number(new URL(url).port) };
}

/** Status line and body of a raw answer. */
function parse(answer: string): { status: number; body: string } {
  const [head = '', body = ''] = answer.split('\r\n\r\n', 2);
  return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1] ?? 0), body };
}

describe('serve checks each request', () => {
  it('answers 421 and nothing else to a Host it does not go by; loopback, --listen and --allow-host names are answered', async () => {
    const { port } = await startServe(['--allow-host', 'dash.example', '--allow-host', 'Wall.Example.']);
    const ask = async (target: string, host: string | undefined) =>
      parse(
        await rawRequest(
          '127.0.181.1',
          port,
          `GET ${target} HTTP/1.1\r\n${host === undefined ? '' : `Host: ${host}\r\n`}Connection: close\r\n\r\n`,
        ),
      );
    for (const host of [
      `127.0.181.1:${port}`,
      `localhost:${port}`,
      `LOCALHOST.:${port}`,
      `[::1]:${port}`,
      '127.0.0.1',
      `dash.example:${port}`,
      'DASH.example',
      `wall.example:${port}`,
    ]) {
      expect((await ask('/api/backends', host)).status, host).toBe(200);
    }
    for (const host of [
      `rebind.example:${port}`,
      'localhost.rebind.example',
      `10.0.0.5:${port}`,
      `127.0.181.1.rebind.example:${port}`,
      `dash.example.evil:${port}`,
      '',
    ]) {
      for (const path of ['/', '/api/backends', '/api/events', '/metrics', '/healthz']) {
        expect(await ask(path, host), `${path} Host: ${host}`).toEqual({ status: 421, body: '' });
      }
    }
    // HTTP/1.0 may leave Host out; a request that names no host is not answered either.
    const noHost = parse(await rawRequest('127.0.181.1', port, 'GET /api/backends HTTP/1.0\r\n\r\n'));
    expect(noHost).toEqual({ status: 421, body: '' });
    // An absolute URL names the host itself, and that one counts (RFC 9112, 3.2.2).
    expect(await ask(`http://rebind.example:${port}/api/backends`, `127.0.181.1:${port}`)).toEqual({
      status: 421,
      body: '',
    });
    expect((await ask(`http://localhost:${port}/api/backends`, `rebind.example:${port}`)).status).toBe(200);
  }, 30_000);

  it('refuses an --allow-host that is not a host name or address', async () => {
    for (const bad of ['dash.example:8765', 'http://dash.example', '*.example', '']) {
      const run = await runCli(['serve', '--allow-host', bad, '--sources', 'config', '--config', configFile([])]);
      expect(run.code, bad).toBe(2);
      expect(run.stderr).toContain(`--allow-host: expected a host name or address without a port, got "${bad}"`);
    }
  });

  it('answers 400, not 500, to a malformed absolute URL', async () => {
    const { port } = await startServe();
    const answer = await rawRequest('127.0.181.1', port, `GET http://[ HTTP/1.1\r\nHost: 127.0.181.1:${port}\r\n\r\n`);
    expect(parse(answer)).toEqual({ status: 400, body: '' });
  });

  it('answers HEAD /api/events with the stream headers at once, holding no stream place', async () => {
    const { url } = await startServe(['--max-sse-clients', '1']);
    const head = get(`${url}/api/events`, { method: 'HEAD', timeoutMs: 3000 });
    await new Promise((r) => setTimeout(r, 500));
    // The one place is free for a real stream, whether the HEAD has finished or not.
    const stream = await sse(`${url}/api/events`);
    stream.close();
    expect(stream.status, 'a stream after a HEAD').toBe(200);
    const answer = await head;
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(answer.body).toBe('');
  });
});
