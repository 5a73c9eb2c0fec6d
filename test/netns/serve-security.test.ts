// serve off loopback, in the namespace (where 0.0.0.0 reaches nothing but lo): a token is
// required to start, and every request without the right one gets 401 and nothing else; the
// page's one-time login sets an HttpOnly, SameSite=Strict cookie.
import { beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';
import { configFile, tokenFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { get } from '../helpers/http.js';
import { enterIsolatedNamespace } from '../helpers/netns.js';
import { isLog, startWatch, type LogLine } from '../helpers/watch.js';

describe('serve off loopback', () => {
  beforeAll(() => enterIsolatedNamespace());

  it('will not start without a token', async () => {
    const run = await runCli(['serve', '--listen', '0.0.0.0:0', '--sources', 'config']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--listen 0\.0\.0\.0: not a loopback address, so a token is required/);
  });

  it('answers 401 and nothing else without the token; Bearer and the login cookie work', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.45' });
    const token = 'correct horse battery staple';
    const serve = startWatch(
      [
        '--listen',
        '0.0.0.0:0',
        '--token-file',
        tokenFile(token),
        '--sources',
        'config',
        '--config',
        configFile([`127.0.0.45:${peer.port}`]),
      ],
      {},
      'serve',
    );
    const url = ((await serve.waitFor<LogLine>('serving', isLog('serving'))).url as string).replace(
      '0.0.0.0',
      '127.0.0.1',
    );
    const refused: Record<string, string>[] = [
      {},
      { Authorization: 'Bearer wrong' },
      { Authorization: `Bearer ${token}x` },
      { Cookie: 'sb_token=nope' },
      { Cookie: 'sb_token=%E0%A4%A' },
    ];
    for (const headers of refused) {
      for (const path of ['/', '/api/backends', '/api/events', '/metrics', '/healthz']) {
        const answer = await get(`${url}${path}`, { headers });
        expect(answer.status, `${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(answer.body).toBe('');
        expect(answer.headers['www-authenticate']).toBe('Bearer');
        expect(answer.headers['set-cookie']).toBeUndefined();
      }
    }
    expect((await get(`${url}/?token=wrong`)).status).toBe(401);
    const bearer = await get(`${url}/api/backends`, { headers: { Authorization: `Bearer ${token}` } });
    expect(bearer.status).toBe(200);
    expect(JSON.parse(bearer.body).schema).toBe(1);
    // The page's login: the token becomes a cookie the page's requests carry, and leaves the URL.
    const login = await get(`${url}/?token=${encodeURIComponent(token)}`);
    expect(login.status).toBe(303);
    expect(login.headers.location).toBe('/');
    const cookie = login.headers['set-cookie']?.[0] ?? '';
    expect(cookie).toMatch(/^sb_token=[^;]+; HttpOnly; SameSite=Strict; Path=\/$/);
    const page = await get(`${url}/`, { headers: { Cookie: cookie.split(';')[0] as string } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<caption>RPC backends');
    serve.signal('SIGTERM');
    expect((await serve.exited).code).toBe(0);
  });
});
