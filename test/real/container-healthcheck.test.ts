// The container image's HEALTHCHECK script (contrib/container/healthcheck.mjs) against a real
// `serve` on loopback: healthy with the token serve asks for, unhealthy without it, and
// unhealthy once serve has stopped.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { configFile, tokenFile } from '../helpers/config.js';
import { isLog, startWatch, type LogLine } from '../helpers/watch.js';

const SCRIPT = fileURLToPath(new URL('../../contrib/container/healthcheck.mjs', import.meta.url));
const TOKEN = 'container-healthcheck-token-0123456789';

function healthcheck(url: string, token: string) {
  return spawnSync(process.execPath, [SCRIPT], {
    env: { ...process.env, HEALTHCHECK_URL: url, SCAN_BACKENDS_TOKEN: token },
    encoding: 'utf8',
    timeout: 10_000,
  });
}

describe('the image healthcheck', () => {
  it("passes on serve's /healthz with the token, fails without it and once serve is gone", async () => {
    const serve = startWatch(
      ['--sources', 'config', '--config', configFile([]), '--listen', '127.0.0.1:0', '--token-file', tokenFile(TOKEN)],
      { SCAN_BACKENDS_TOKEN: '' },
      'serve',
    );
    const url = `${(await serve.waitFor<LogLine>('serving', isLog('serving'))).url as string}/healthz`;

    const healthy = healthcheck(url, TOKEN);
    expect(healthy.stderr).toBe('');
    expect(healthy.status).toBe(0);

    const noToken = healthcheck(url, '');
    expect(noToken.stderr).toBe(`healthcheck: ${url} answered 401\n`);
    expect(noToken.status).toBe(1);

    serve.signal('SIGTERM');
    expect((await serve.exited).code).toBe(0);
    const gone = healthcheck(url, TOKEN);
    expect(gone.stderr).toBe(`healthcheck: ${url}: ECONNREFUSED\n`);
    expect(gone.status).toBe(1);
  });
});
