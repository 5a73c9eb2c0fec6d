// The CLI behaves like a well-kept Unix tool, each manner tried as a new user would.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it, onTestFinished } from 'vitest';

import { probe } from '../../lib/scan/job.js';
import { CLI, runCli, startCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import { closedPort, eventually } from '../helpers/net.js';

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
    [['scan', '127.0.0.1', '--timing', 'slow'], '--timing: expected adaptive or fixed; got "slow"'],
    [['scan', '127.0.0.1', '--min-rtt-timeout', '0'], '--min-rtt-timeout: must be an integer 1..3600000, got 0'],
    [
      ['scan', '127.0.0.1', '--min-rtt-timeout', '600', '--max-rtt-timeout', '500'],
      'minRttTimeoutMs (--min-rtt-timeout): the floor (600 ms) must not exceed the ceiling (500 ms)',
    ],
    [
      ['resolve', '--timeout', '300', '--max-rtt-timeout', '500'],
      '(--max-rtt-timeout): the ceiling, also given as timeoutMs (--timeout): 500 ≠ 300',
    ],
    [['scan', '-5'], 'unknown option "-5": a target cannot start with "-"'],
    // parseArgs splits these into short flags and names only the first ("-1"): named whole.
    [['scan', '-127.0.0.1'], 'unknown option "-127.0.0.1": a target cannot start with "-"'],
    [['scan', '127.0.0.1', '-p', '80', '-127.0.0.0/24'], 'unknown option "-127.0.0.0/24": a target cannot'],
    [['probe', '-127.0.0.1:6379'], 'unknown option "-127.0.0.1:6379": a target cannot start with "-"'],
    [['resolve', '-rpc-version', '5.1.0'], 'unknown option -rpc-version (did you mean --rpc-version?)'],
    [['scan', '127.0.0.1', '-p', '-5'], '-5: port must be 1..65535'],
    [['resolve', 'extra'], 'unexpected argument extra: this command takes no targets'],
    // issue 22: each message says what to type instead.
    [
      ['scan', '127.0.0.45:50052'],
      '127.0.0.45:50052: a port goes in -p (ports), not in the target: scan 127.0.0.45 -p 50052',
    ],
    [['scan', '127.0.0.1', '-p'], '-p needs a value (a port list like 50052 or 8000-8100)'],
    [['scan', '127.0.0.1', '--format'], '--format needs a value (one of table, json, ndjson)'],
    [['resolve', '--sources'], '--sources needs a value (a comma list of process, config, scan, redis, dns-sd)'],
    [['watch', '--interval', '0'], '--interval: must be 100ms..1d, got 0'],
    [['resolve', '--dns-sd-type', 'ggml'], '--dns-sd-type: expected a service type such as _ggml-rpc._tcp'],
    [['resolve', '--dns-sd-wait', '5m'], '--dns-sd-wait: must be 10ms..1m, got 5m'],
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

  it('a mistyped command gets the nearest one, and the general usage', async () => {
    const run = await runCli(['scna', '127.0.0.1']);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(
      'scan-backends: unknown command scna; did you mean scan?\nRun "scan-backends --help" for usage.\n',
    );
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

describe('output manners, issue 22', () => {
  it('an interrupted scan counts what it scanned and what was still pending', async () => {
    // 254 pairs at 50 connects a second: SIGINT lands mid-scan.
    const scan = startCli(['scan', '127.0.3.0/24', '-p', '1', '--rate', '50', '--format', 'ndjson']);
    let lines = 0;
    scan.child.stdout?.on('data', (d: Buffer) => (lines += d.toString().split('\n').length - 1));
    expect(await eventually(() => lines >= 10, 5000)).toBe(true);
    scan.child.kill('SIGINT');
    const run = await scan.done;
    expect(run.code).toBe(130);
    const printed = run.stdout.trim().split('\n').length;
    const said = /interrupted: (\d+) of 254 host:port pairs scanned, (\d+) still pending/.exec(run.stderr);
    expect(said, run.stderr).not.toBeNull();
    expect(Number(said?.[1])).toBe(printed);
    expect(Number(said?.[1]) + Number(said?.[2])).toBe(254);
    expect(printed).toBeLessThan(254);
  });

  it('an empty resolve prints no bare header and says on stderr what each source gave and dropped', async () => {
    const port = await closedPort('127.0.3.1');
    const file = configFile([`127.0.3.1:${port}`, `127.0.3.2:${port}`]);
    const run = await runCli(['resolve', '--sources', 'config,redis', '--config', file, '--format', 'table'], {
      env: { SCAN_BACKENDS_REDIS: '' },
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trim().split('\n');
    expect(lines[0]).toBe('scan-backends: no live backend; each source (--explain tells every candidate):');
    expect(lines[1]).toBe(
      `  config: empty, 2 candidates, 2 dropped (127.0.3.1:${port}: closed (connection refused); 1 more): ${file}`,
    );
    expect(lines[2]).toMatch(/^ {2}redis: skipped, 0 candidates: no Redis URL/);
  });

  it('one rule for the default format: a pipe gets JSON from a one-answer command, NDJSON from a stream', async () => {
    const port = await closedPort('127.0.3.3');
    const probed = await runCli(['probe', `127.0.3.3:${port}`]);
    expect(JSON.parse(probed.stdout)).toMatchObject({ schema: 1, results: [{ host: '127.0.3.3', state: 'closed' }] });
    const doctor = await runCli(['doctor', '--config', configFile(['127.0.3.3'])]);
    expect(JSON.parse(doctor.stdout)).toMatchObject({ schema: 1 });
    const resolved = await runCli(['resolve', '--sources', 'config', '--config', configFile([`127.0.3.3:${port}`])]);
    expect(JSON.parse(resolved.stdout)).toMatchObject({ schema: 1, backends: [] });
    const scanned = await runCli(['scan', '127.0.3.4-5', '-p', String(port)]);
    expect(
      scanned.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { host: string }).host)
        .sort(),
    ).toEqual(['127.0.3.4', '127.0.3.5']);
  });

  it('a terminal gets the table, from the same command', async () => {
    const port = await closedPort('127.0.3.3');
    // script(1) gives the command a pseudo-terminal for stdout.
    const run = spawnSync('script', ['-qec', `"${process.execPath}" "${CLI}" probe 127.0.3.3:${port}`, '/dev/null'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.stdout).toMatch(/HOST\s+PORT\s+STATE/);
    expect(run.stdout).toMatch(new RegExp(`127\\.0\\.3\\.3\\s+${port}\\s+closed`));
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
    expect(await complete(['scan-backends', 'scan', '--tim'])).toBe('--timing --timeout');
    expect(await complete(['scan-backends', 'resolve', '--accept'])).toBe('--accept-silent');
    expect(await complete(['scan-backends', 'completion', 'f'])).toBe('fish');
    expect(await complete(['scan-backends', 'wa'])).toBe('watch');
    expect(await complete(['scan-backends', 'watch', '--health'])).toBe('--health-interval');
    expect(await complete(['scan-backends', 'doctor', '--re'])).toBe('--redis');
    // Values: words, the next word of a comma list, files; nothing for a free value.
    expect(await complete(['scan-backends', 'scan', '--format', 'nd'])).toBe('ndjson');
    expect(await complete(['scan-backends', 'probe', '--engine', ''])).toBe('auto native js');
    expect(await complete(['scan-backends', 'resolve', '--sources', 'process,sc'])).toBe('process,scan');
    expect(await complete(['scan-backends', 'scan', '--probe', '--service', 'ggml-rpc,gr'])).toBe('ggml-rpc,grpc');
    expect(await complete(['scan-backends', 'watch', '--log-level', 'w'])).toBe('warn');
    const dir = mkdtempSync(join(tmpdir(), 'sb-complete-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'rpc_backends.conf'), '');
    for (const flag of ['--config', '--log-file', '--token-file', '--fleet-key-file']) {
      expect(await complete(['scan-backends', flag === '--token-file' ? 'serve' : 'watch', flag, `${dir}/rpc_`])).toBe(
        `${dir}/rpc_backends.conf`,
      );
    }
    expect(await complete(['scan-backends', 'scan', '--timeout', ''])).toBe('');
    // watch offers what its help lists, and its help lists what it offers.
    const offered = (await complete(['scan-backends', 'watch', '-'])).split(' ');
    const help = (await runCli(['watch', '--help'])).stdout;
    expect(offered).toEqual(expect.arrayContaining(['--strict', '--no-verify', '--require-redis']));
    for (const flag of offered.filter((f) => f !== '--help' && f !== '-h'))
      expect(help, flag).toMatch(new RegExp(`${flag}\\b(?!-)`));
    expect(await complete(['scan-backends', 'an'])).toBe('announce');
    expect(await complete(['scan-backends', 'announce', '--na'])).toBe('--name');
    expect(await complete(['scan-backends', 'resolve', '--dns-sd-w'])).toBe('--dns-sd-wait');
  });

  it('fish and zsh scripts name the same flags; an unknown shell is a usage error', async () => {
    const fish = (await runCli(['completion', 'fish'])).stdout;
    expect(fish).toContain("complete -c scan-backends -f -n '__fish_seen_subcommand_from probe' -l allow-public");
    expect(fish).toContain(
      "complete -c scan-backends -f -n '__fish_seen_subcommand_from scan' -l format -x -a 'table json ndjson'",
    );
    expect(fish).toContain("complete -c scan-backends -f -n '__fish_seen_subcommand_from resolve' -l config -r -F");
    const zsh = (await runCli(['completion', 'zsh'])).stdout;
    expect(zsh.split('\n')[0]).toBe('#compdef scan-backends');
    const bad = await runCli(['completion', 'tcsh']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('completion: expected bash, zsh or fish, got "tcsh"');
  });
});
