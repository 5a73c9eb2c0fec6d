import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { describe, expect, it, onTestFinished } from 'vitest';

import { CLI, runCli, startCli } from '../helpers/cli.js';
import { closedPort, eventually, listen } from '../helpers/net.js';

const ROOT = dirname(dirname(CLI));

describe('scan-backends scan', () => {
  it('prints one JSON object with schema 1, sorted results, and exits 0 when a port is open', async () => {
    const { port } = await listen('127.0.0.102');
    const run = await runCli(['scan', '127.0.0.101-103', '-p', String(port), '--format', 'json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(Object.keys(report)).toEqual(['schema', 'engine', 'elapsedMs', 'timing', 'results']);
    expect(report.schema).toBe(1);
    expect(['native', 'js']).toContain(report.engine);
    expect(typeof report.elapsedMs).toBe('number');
    expect(report.results.map((r: { host: string; state: string }) => [r.host, r.state])).toEqual([
      ['127.0.0.101', 'closed'],
      ['127.0.0.102', 'open'],
      ['127.0.0.103', 'closed'],
    ]);
    for (const r of report.results) {
      expect(Object.keys(r)).toEqual(['host', 'port', 'state', 'rttMs']);
      expect(r.port).toBe(port);
    }
  });

  it('exits 1 when nothing is open', async () => {
    const port = await closedPort('127.0.0.104');
    const run = await runCli(['scan', '127.0.0.104', '-p', String(port), '--format', 'json']);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout).results).toHaveLength(1);
  });

  it('--open keeps only open ports', async () => {
    const { port } = await listen('127.0.0.106');
    const run = await runCli(['scan', '127.0.0.105-107', '-p', String(port), '--format', 'json', '--open']);
    expect(JSON.parse(run.stdout).results.map((r: { host: string }) => r.host)).toEqual(['127.0.0.106']);
  });

  it('prints NDJSON, one result a line, when stdout is not a terminal', async () => {
    const { port } = await listen('127.0.0.108');
    const run = await runCli(['scan', '127.0.0.108,127.0.0.109', '--ports', String(port)]);
    expect(run.code).toBe(0);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines.find((l) => l.host === '127.0.0.108')).toMatchObject({ port, state: 'open' });
  });

  it('prints a table with a summary on request', async () => {
    const { port } = await listen('127.0.0.110');
    const run = await runCli(['scan', '127.0.0.110', '-p', String(port), '--format', 'table']);
    expect(run.stdout).toMatch(/^HOST\s+PORT\s+STATE\s+RTT\n127\.0\.0\.110\s+\d+\s+open\s+[\d.]+ ms\n$/);
    expect(run.stderr).toMatch(/1 host:port pair scanned in [\d.]+ s \((native|js) engine\): 1 open/);
  });

  it('runs both engines on request', async () => {
    const { port } = await listen('127.0.0.111');
    for (const engine of ['native', 'js']) {
      const run = await runCli(['scan', '127.0.0.111', '-p', String(port), '--format', 'json', '--engine', engine]);
      expect(JSON.parse(run.stdout)).toMatchObject({ engine, results: [{ state: 'open' }] });
    }
  });

  it.each([
    [['scan', '10.9.66.0/33'], '10.9.66.0/33: prefix must be 0..32'],
    [['scan', '300.1.1.1'], '300.1.1.1: octet 300 is out of range 0..255'],
    [['scan', '127.0.0.1', '-p', '0'], '0: port must be 1..65535'],
    [['scan', '127.0.0.1', '-p', '70000'], '70000: port must be 1..65535'],
    [['scan', ''], 'empty target list'],
    [['scan', '127.0.0.1', '--timeout', 'soon'], '--timeout: expected a whole number, got "soon"'],
    [['scan', '127.0.0.1', '--engine', 'turbo'], '--engine: expected auto, native or js; got "turbo"'],
    [['scan', '127.0.0.1', '--format', 'xml'], '--format: expected table, json, ndjson; got "xml"'],
    [['scan', '127.0.0.1', '--bogus'], 'unknown option --bogus'],
    [['scan', '8.8.8.8'], '8.8.8.8: outside private, loopback, link-local, CGNAT and ULA space; pass --allow-public'],
    [['scan', '10.0.0.0/8'], 'pass --allow-large'],
    [['frobnicate'], 'unknown command frobnicate'],
  ])('%j is a usage error: exit 2, nothing scanned, the bad token named', async (args, message) => {
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(message);
  });

  it('prints help and exits 0', async () => {
    const run = await runCli(['scan', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Usage: scan-backends scan');
  });
});

describe('scan-backends demo', () => {
  it('finds and identifies the two loopback ggml-rpc servers it starts, and exits 0', async () => {
    const run = await runCli(['demo', '--format', 'table']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /127\.0\.0\.45\s+50052\s+open\s+ggml-rpc\s+serving\s+[\d.]+ ms\s+protocol 5\.0\.0, 2 dev/,
    );
    expect(run.stdout).toMatch(/127\.0\.0\.48\s+50052\s+open\s+ggml-rpc\s+incompatible\s+[\d.]+ ms\s+protocol 3\.6\.1/);
    expect(run.stdout).toContain('Not shown: 252 closed');
  });

  it('--keep leaves the two servers running for probe and resolve until Ctrl-C', async () => {
    const demo = startCli(['demo', '--keep']);
    let said = '';
    demo.child.stderr?.on('data', (d: Buffer) => (said += d.toString()));
    expect(await eventually(() => said.includes('Ctrl-C stops them'), 10_000)).toBe(true);
    const probed = await runCli(['probe', '127.0.0.45', '127.0.0.48', '--format', 'json']);
    expect(JSON.parse(probed.stdout).results.map((r: { rpc: { protocol: string } }) => r.rpc.protocol)).toEqual([
      '5.0.0',
      '3.6.1',
    ]);
    demo.child.kill('SIGINT');
    expect((await demo.done).code).toBe(0);
    const gone = await runCli(['probe', '127.0.0.45', '--format', 'json']);
    expect(JSON.parse(gone.stdout).results[0].state).toBe('closed');
  });

  it('every command it suggests runs as printed once the quick start linked the command, and finds what the demo showed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-demo-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    // A PATH without scan-backends: the demo says how to put it there.
    mkdirSync(join(dir, 'empty'));
    const demo = startCli(['demo', '--keep'], { env: { PATH: join(dir, 'empty') } });
    let said = '';
    demo.child.stderr?.on('data', (d: Buffer) => (said += d.toString()));
    try {
      expect(await eventually(() => said.includes('not on PATH'), 10_000)).toBe(true);
      expect(said).toContain('scan-backends is not on PATH: run `npm link --ignore-scripts` in the clone');
      const suggested = /try:\n((?: {2}.+\n)+)Ctrl-C/.exec(said)?.[1]?.split('\n').filter(Boolean) ?? [];
      const commands = suggested.map((line) => line.trim());
      expect(commands.length).toBeGreaterThanOrEqual(3);
      // The usage text and the README suggest the same lines.
      const usage = (await runCli(['demo', '--help'])).stdout;
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
      for (const command of commands) {
        expect(usage).toContain(`  ${command}\n`);
        expect(readme).toContain(`\n${command}\n`);
      }
      // The README's quick start, `npm link --ignore-scripts`, into a prefix of the test's own.
      const prefix = join(dir, 'prefix');
      const link = spawnSync('npm', ['link', '--ignore-scripts', '--offline', '--no-audit', '--no-fund'], {
        cwd: ROOT,
        env: { ...process.env, npm_config_prefix: prefix },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(link.status, link.stderr).toBe(0);
      expect(readme).toContain('npm link --ignore-scripts');

      // In an empty directory, each line as a user would paste it.
      const cwd = join(dir, 'work');
      mkdirSync(cwd);
      const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}` };
      delete env.SCAN_BACKENDS_CONFIG;
      delete env.SCAN_BACKENDS_RPC_VERSION;
      const outputs = commands.map((command) =>
        spawnSync('sh', ['-ec', command], { cwd, env, encoding: 'utf8', timeout: 10_000 }),
      );
      for (const [i, run] of outputs.entries()) expect(run.stderr, commands[i]).not.toMatch(/not found/);
      // probe: what the demo showed, 5.0.0 and 3.6.1 (JSON in a pipe).
      const probed = outputs[commands.findIndex((c) => c.startsWith('scan-backends probe'))];
      expect(
        JSON.parse(probed?.stdout ?? '').results.map((r: { rpc: { protocol: string } }) => r.rpc.protocol),
      ).toEqual(['5.0.0', '3.6.1']);
      // resolve: the server the demo showed serving, the 3.6.1 one dropped as its 5.1.0 client would.
      const resolved = outputs[commands.findIndex((c) => c.startsWith('scan-backends resolve'))];
      expect(resolved?.status).toBe(0);
      const report = JSON.parse(resolved?.stdout ?? '');
      expect(report.backends.map((b: { host: string; port: number }) => `${b.host}:${b.port}`)).toEqual([
        '127.0.0.45:50052',
      ]);
      expect(report.compatibility).toMatchObject({ client: '5.1.0' });
      expect(report.sources[0].dropped).toEqual([
        expect.objectContaining({ host: '127.0.0.48', reason: expect.stringContaining('does not match client 5.1.0') }),
      ]);
    } finally {
      demo.child.kill('SIGINT');
      await demo.done;
    }
  });

  it('exits 3 naming the address when a demo port is taken', async () => {
    await listen('127.0.0.48', 50052);
    const run = await runCli(['demo']);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('demo: cannot listen on 127.0.0.48:50052');
  });
});

describe('a low descriptor limit', () => {
  for (const engine of ['native', 'js']) {
    for (const concurrency of [undefined, 1000]) {
      it(`${engine}: ulimit -n 128 and 1,024 targets${concurrency ? ` with --concurrency ${concurrency}` : ''} give correct states`, async () => {
        const { port } = await listen('127.0.9.7');
        const args = ['scan', '127.0.8.0-127.0.11.255', '-p', String(port), '--format', 'json', '--engine', engine];
        if (concurrency) args.push('--concurrency', String(concurrency));
        const run = await runCli(args, { shellPrefix: 'ulimit -n 128 &&' });
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
        const { results } = JSON.parse(run.stdout) as { results: { host: string; state: string }[] };
        expect(results).toHaveLength(1024);
        expect(results.filter((r) => r.state === 'open').map((r) => r.host)).toEqual(['127.0.9.7']);
        expect(results.filter((r) => r.state === 'closed')).toHaveLength(1023);
      });
    }
  }
});
