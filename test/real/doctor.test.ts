// `scan-backends doctor` against real things: a real config file, a real redis-server and a
// port where none listens, the addon this checkout built.
import { describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import { closedPort } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';

interface Report {
  schema: 1;
  ok: boolean;
  findings: { check: string; status: 'ok' | 'warn' | 'fail'; detail: string; fix?: string }[];
}

describe('doctor', () => {
  it('all good: a valid config and a reachable Redis, exit 0, one line per check', async () => {
    const redis = await startRedis();
    const config = configFile(['127.0.1.90:50052', '127.0.1.91', 'rpc-version 5.1.0']);
    const run = await runCli(['doctor', '--config', config, '--redis', redis.url, '--format', 'text']);
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines.find((l) => / addon: /.test(l))).toMatch(/^ok {3}addon: native addon loaded/);
    expect(lines.find((l) => / fd limit: /.test(l))).toMatch(/RLIMIT_NOFILE \d+: \d+ connects in flight/);
    expect(lines).toContain(`ok   config: ${config}: 2 backend(s), rpc-version 5.1.0`);
    expect(lines.find((l) => / coordinators: /.test(l))).toMatch(/^ok {3}coordinators: \d+ coordinator process/);
    expect(lines).toContain(`ok   redis: ${redis.url}: 0 registered backend(s)`);
    expect(lines.some((l) => / subnets: /.test(l))).toBe(true);
  });

  it('fails naming each bad config line and an unreachable Redis, with the fix; exit 1; JSON too', async () => {
    const port = await closedPort('127.0.0.1');
    const config = configFile(['127.0.1.90:50052', '127.0.1.92:port', 'rpc-version five']);
    const run = await runCli([
      'doctor',
      '--config',
      config,
      '--redis',
      `redis://:secret@127.0.0.1:${port}`,
      '--format',
      'text',
    ]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`fail config: ${config}: 2 bad line(s): ${config}:2: bad token "127.0.1.92:port"`);
    expect(run.stdout).toContain(`${config}:3: bad token "rpc-version five"`);
    expect(run.stdout).toMatch(/fail redis: .*refused/);
    expect(run.stdout).not.toContain('secret');
    expect(run.stdout).toMatch(/\n {5}fix: /);

    const json = await runCli(['doctor', '--config', '/nonexistent/rpc_backends.conf', '--format', 'json']);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as Report;
    expect(report).toMatchObject({ schema: 1, ok: false });
    expect(report.findings.find((f) => f.check === 'config')).toMatchObject({
      status: 'fail',
      detail: '/nonexistent/rpc_backends.conf: no such file',
    });
    expect(report.findings.map((f) => f.check)).toEqual(
      expect.arrayContaining(['addon', 'fd limit', 'config', 'coordinators', 'redis', 'subnets']),
    );
  });

  it('a bad flag is a usage error', async () => {
    const run = await runCli(['doctor', '--redis', 'localhost:6379']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--redis: expected redis:\/\/host:port/);
  });
});
