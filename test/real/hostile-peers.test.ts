// Hostile peers cannot stall, flood or crash a probe: every probe ends within its deadline
// (plus a small bound) in both engines, every promise settles, every descriptor is closed,
// and the CLI exits with its answer and no escape sequence reaches the terminal.
import { describe, expect, it } from 'vitest';

import { probe } from '../../lib/scan/job.js';
import { runCli, startCli } from '../helpers/cli.js';
import { hostilePeer, type Speaker } from '../helpers/hostile.js';
import { countFds, settledFdCount } from '../helpers/net.js';

const PROBE_TIMEOUT_MS = 1000;

// nghttp2 (the JS engine's HTTP/2) has flood guards of its own, which may end a flood first.
const cases: [Speaker, string, RegExp][] = [
  ['reset-at-once', 'ggml-rpc', /reset the connection|closed the connection|connect failed: ECONNRESET/],
  ['short-body', 'http', /ended after \d+ bytes of its body|no known service/],
  ['h2-settings-flood', 'grpc', /read budget|does not read what the probe sends|ERR_HTTP2/],
  ['h2-ping-flood', 'grpc', /read budget|does not read what the probe sends|ERR_HTTP2/],
  ['h2-continuation-flood', 'grpc', /read budget|does not read what the probe sends|header block|ERR_HTTP2/],
];

describe.each(['native', 'js'] as const)('hostile peers, %s engine', (engine) => {
  it.each(cases.map(([kind, service, reason], i) => [kind, service, reason, i] as const))(
    '%s: the %s probe ends in time with a reason, leaking nothing',
    async (kind, service, reason, i) => {
      const host = `127.0.0.${(engine === 'native' ? 160 : 170) + i}`;
      const port = await hostilePeer(kind, host);
      const before = countFds();
      const started = performance.now();
      const r = await probe(host, port, {
        engine,
        service: service as 'ggml-rpc' | 'grpc' | 'http',
        probeTimeoutMs: PROBE_TIMEOUT_MS,
      });
      expect(performance.now() - started).toBeLessThan(2 * PROBE_TIMEOUT_MS + 1000);
      expect(r.service).toBe('unknown');
      expect(r.reason).toMatch(reason);
      expect(await settledFdCount(before)).toBe(before);
    },
  );

  it('ten runs against a peer that resets right after accept never crash the process', async () => {
    const host = engine === 'native' ? '127.0.0.168' : '127.0.0.178';
    const port = await hostilePeer('reset-at-once', host);
    for (let i = 0; i < 10; i++) {
      const run = await runCli(['probe', `${host}:${port}`, '--engine', engine, '--format', 'json']);
      // The reset may beat the connect (a failed connection, 4) or follow it (open, 1).
      expect([1, 4], run.stderr).toContain(run.code);
      expect(JSON.parse(run.stdout).results[0].host).toBe(host);
    }
  });

  it('an HTTP body cut short ends the CLI with its answer beside a refused target', async () => {
    const port = await hostilePeer('short-body', engine === 'native' ? '127.0.0.169' : '127.0.0.179');
    const host = engine === 'native' ? '127.0.0.169' : '127.0.0.179';
    const run = await runCli([
      'probe',
      `${host}:${port}`,
      '127.0.0.1:1',
      '--engine',
      engine,
      '--probe-timeout',
      '800',
      '--format',
      'table',
    ]);
    expect(run.code).toBe(4);
    expect(run.stdout).toMatch(new RegExp(`${host.replace(/\./g, '\\.')}\\s+${port}\\s+open`));
    expect(run.stdout).toMatch(/127\.0\.0\.1\s+1\s+closed/);
  });
});

describe('what a peer says reaches no terminal raw', () => {
  it('a version full of escape sequences prints without a control character, and JSON bounds it', async () => {
    const port = await hostilePeer('ansi-version', '127.0.0.185');
    const table = await runCli(['probe', `127.0.0.185:${port}`, '--service', 'http', '--format', 'table']);
    expect(table.stdout).toContain('ollama');
    // eslint-disable-next-line no-control-regex
    expect(table.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    const json = await runCli(['probe', `127.0.0.185:${port}`, '--service', 'http', '--format', 'json']);
    const version = JSON.parse(json.stdout).results[0].http.version as string;
    expect(version).toBe(']0;pwned[2J0.9.31m1');
  });

  it('the CLI exits with its answer while a peer keeps flooding, and SIGTERM always ends it', async () => {
    const port = await hostilePeer('h2-ping-flood', '127.0.0.186');
    const run = await runCli([
      'probe',
      `127.0.0.186:${port}`,
      '--service',
      'grpc',
      '--engine',
      'js',
      '--probe-timeout',
      '800',
    ]);
    expect(run.code).toBe(1);
    const sink = await hostilePeer('sink', '127.0.0.187');
    const slow = startCli(['probe', `127.0.0.187:${sink}`, '--service', 'ggml-rpc', '--probe-timeout', '60000']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    slow.child.kill('SIGTERM');
    const ended = await slow.done;
    expect(ended.code ?? ended.signal).not.toBe(null);
  });
});
