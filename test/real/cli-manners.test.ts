// The CLI behaves like a well-kept Unix tool, each manner tried as a new user would.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { probe } from '../../lib/scan/job.js';
import { CLI, runCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import { closedPort } from '../helpers/net.js';

describe('a closed stdout', () => {
  it('ends a scan piped into head -1 quietly, with the SIGPIPE status and no trace', async () => {
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      // 4,096 results (about 400 KB of NDJSON) outgrow the pipe's 64 KiB, so the scan always
      // writes into the pipe head closed; a /24's 25 KB could all fit in before head exits.
      const child = spawn(
        'bash',
        [
          '-c',
          'set -o pipefail; "$0" "$1" scan 127.0.0.0/20 -p 1 --format ndjson 2>"$2" | head -1',
          process.execPath,
          CLI,
          join(mkdtempSync(join(tmpdir(), 'sb-pipe-')), 'err'),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr: '' }));
    });
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    expect(run.code).toBe(141);
  });
});

describe('help', () => {
  it.each([
    [['help', 'scan'], 'Usage: scan-backends scan'],
    [['scan', '--help'], 'Usage: scan-backends scan'],
    [['probe', '-h'], 'Usage: scan-backends probe'],
    [['help', 'resolve'], 'Usage: scan-backends resolve'],
    [['demo', '--help'], 'Usage: scan-backends demo'],
    [['announce', '--help'], 'Usage: scan-backends announce'],
    [['help'], 'Usage: scan-backends <command>'],
  ])('%j shows that usage and exits 0', async (args, usage) => {
    const run = await runCli(args);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(usage);
  });

  it('help for a command that does not exist is a usage error', async () => {
    const run = await runCli(['help', 'nosuch']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('help: no command "nosuch"');
  });

  it('--version answers after a subcommand too', async () => {
    const run = await runCli(['scan', '--version']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});

describe('flag errors are ours, and point at the command help', () => {
  it.each([
    [['scan', '127.0.0.1', '--timout', '500'], 'unknown option --timout (did you mean --timeout?)'],
    [['scan', '127.0.0.1', '--port', '1'], 'unknown option --port (did you mean --ports?)'],
    [['scan', '127.0.0.1', '--timeout', '-5'], '--timeout: must be an integer 1..3600000, got -5'],
    [['scan', '127.0.0.1', '--timeout', '0'], '--timeout: must be an integer 1..3600000, got 0'],
    [['scan', '127.0.0.1', '--timeout'], '--timeout needs a value'],
    [['scan', '-5'], 'unknown option "-5": a target cannot start with "-"'],
    // parseArgs splits these into short flags and names only the first ("-1"): named whole.
    [['scan', '-127.0.0.1'], 'unknown option "-127.0.0.1": a target cannot start with "-"'],
    [['scan', '127.0.0.1', '-p', '80', '-127.0.0.0/24'], 'unknown option "-127.0.0.0/24": a target cannot'],
    [['probe', '-127.0.0.1:6379'], 'unknown option "-127.0.0.1:6379": a target cannot start with "-"'],
    [['resolve', '-rpc-version', '5.1.0'], 'unknown option -rpc-version (did you mean --rpc-version?)'],
    [['scan', '127.0.0.1', '-p', '-5'], '-5: port must be 1..65535'],
    [['resolve', 'extra'], 'unexpected argument extra: this command takes no targets'],
    [['resolve', '--dns-sd-type', 'ggml'], '--dns-sd-type: expected a service type such as _ggml-rpc._tcp'],
    [['resolve', '--dns-sd-wait', '5m'], '--dns-sd-wait: must be an integer 10..60000, got 300000'],
    [['announce', '--rpc', 'gpu:1'], '--rpc: expected an address and port such as 192.168.1.20:50052'],
    [
      ['scan', '127.0.0.1', '-p', '1', '--exclude', '127.0.0.1'],
      'the exclusions (exclude, --exclude) remove every target',
    ],
  ])('%j', async (args, message) => {
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr).toContain(`Run "scan-backends ${args[0]} --help" for usage.`);
  });

  it('an environment variable is named as such', async () => {
    const run = await runCli(['scan', '127.0.0.1', '-p', '1'], { env: { SCAN_BACKENDS_ENGINE: 'rust' } });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('$SCAN_BACKENDS_ENGINE: must be auto, native or js, got "rust"');
  });
});

describe('output manners', () => {
  it('says "1 host:port pair", and --open with nothing open prints no bare header', async () => {
    const port = await closedPort('127.0.0.31');
    const run = await runCli(['scan', `127.0.0.31`, '-p', String(port), '--open', '--format', 'table']);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('1 host:port pair scanned');
  });

  it('probe --format ndjson prints one result a line', async () => {
    const port = await closedPort('127.0.0.32');
    const run = await runCli(['probe', `127.0.0.32:${port}`, `127.0.0.33:${port}`, '--format', 'ndjson']);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { host: string });
    expect(lines.map((l) => l.host).sort()).toEqual(['127.0.0.32', '127.0.0.33']);
  });

  it('resolve --format rpc with nothing live prints nothing and exits 1; a bad config line is a warning without --explain', async () => {
    const file = configFile(['oops oops']);
    const run = await runCli(['resolve', '--sources', 'config', '--config', file, '--format', 'rpc']);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`warning: ${file}:1: bad token "oops oops"`);
  });

  it('probe() from JavaScript defaults the port to 50052 and takes host:port', async () => {
    const port = await closedPort('127.0.0.34');
    expect((await probe('127.0.0.34')).port).toBe(50052);
    expect(await probe(`127.0.0.34:${port}`)).toMatchObject({ port, state: 'closed' });
    await expect(probe('127.0.0.34:0')).rejects.toMatchObject({ code: 'SB_INVALID_TARGET' });
  });
});

describe('shell completion', () => {
  it('bash completes commands and each command’s own flags, run in a real bash', async () => {
    const script = (await runCli(['completion', 'bash'])).stdout;
    const complete = (words: string[]) =>
      new Promise<string>((resolve) => {
        const child = spawn('bash', [
          '-c',
          `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _scan_backends; echo "\${COMPREPLY[*]}"`,
        ]);
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('close', () => resolve(out.trim()));
      });
    expect(await complete(['scan-backends', 're'])).toBe('resolve');
    expect(await complete(['scan-backends', 'scan', '--tim'])).toBe('--timeout');
    expect(await complete(['scan-backends', 'resolve', '--accept'])).toBe('--accept-silent');
    expect(await complete(['scan-backends', 'completion', 'f'])).toBe('fish');
    expect(await complete(['scan-backends', 'wa'])).toBe('watch');
    expect(await complete(['scan-backends', 'watch', '--health'])).toBe('--health-interval');
    expect(await complete(['scan-backends', 'doctor', '--re'])).toBe('--redis');
    expect(await complete(['scan-backends', 'an'])).toBe('announce');
    expect(await complete(['scan-backends', 'announce', '--na'])).toBe('--name');
    expect(await complete(['scan-backends', 'resolve', '--dns-sd-w'])).toBe('--dns-sd-wait');
  });

  it('fish and zsh scripts name the same flags; an unknown shell is a usage error', async () => {
    const fish = (await runCli(['completion', 'fish'])).stdout;
    expect(fish).toContain("complete -c scan-backends -f -n '__fish_seen_subcommand_from probe' -l allow-public");
    const zsh = (await runCli(['completion', 'zsh'])).stdout;
    expect(zsh.split('\n')[0]).toBe('#compdef scan-backends');
    const bad = await runCli(['completion', 'tcsh']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('completion: expected bash, zsh or fish, got "tcsh"');
  });
});
