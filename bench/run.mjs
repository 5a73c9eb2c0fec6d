#!/usr/bin/env node
// The benches: scan-backends' native and JS engines against the tools people use today, side
// by side in one run, on loopback inside a network namespace of their own (`unshare -rn`):
// only `lo`, silent hosts made with nftables drop rules. Never a real network.
//
// usage: node bench/run.mjs [--quick] [--scenario S1,S3,startup] [--reps N]
//   --quick    S1, S2, S4 and S5, one repetition (S5: two), correctness only (what CI runs)
//   --scenario these only, of S1-S6, startup, watch and serve (default: all; quick: not S3, S6)
//   --reps N every contender N times (default 5; the rows the goals judge 20, S5 20)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { describeStartup, runStartup } from './startup.mjs';

const BENCH = fileURLToPath(new URL('.', import.meta.url));
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const TIMEOUT_MS = 1000;
const PORT = 50052;

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, scenario: { type: 'string' }, reps: { type: 'string' } },
});

// Never touch a firewall outside an isolated namespace: re-run ourselves inside one.
const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).trim().split('\n');
if (links.length !== 1 || !links[0].includes(' lo:')) {
  const child = spawnSync(
    'unshare',
    ['-rn', process.execPath, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    {
      stdio: 'inherit',
    },
  );
  process.exit(child.status ?? 1);
}
execFileSync('ip', ['link', 'set', 'lo', 'up']);

const have = (command) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;

/**
 * Every SYN to PORT dropped but those to `answering`; with `lossy`, the first SYN to that host
 * from each source address is dropped too (the set `lossy` remembers the source, so the next
 * SYN, a retry or the kernel's own retransmission, passes): one lost packet, as on Wi-Fi.
 */
function firewall(answering, { lossy } = {}) {
  const keep = answering.length > 0 ? `ip daddr != { ${answering.join(', ')} } ` : '';
  const lose = lossy
    ? `  ip daddr ${lossy} tcp dport ${PORT} tcp flags & (syn | ack) == syn ip saddr != @lossy add @lossy { ip saddr } drop\n`
    : '';
  execFileSync('nft', ['-f', '-'], {
    input: `flush ruleset\ntable inet bench {\n set lossy { type ipv4_addr; flags dynamic; }\n chain input {\n  type filter hook input priority 0;\n${lose}  ${keep}tcp dport ${PORT} drop\n }\n}\n`,
  });
}

const node = (script, ...args) => [process.execPath, join(BENCH, 'contenders', script), ...args];
const resolvable = (name) => {
  try {
    createRequire(join(BENCH, 'contenders', '/')).resolve(name);
    return true;
  } catch {
    return false;
  }
};

// The C programs of bench/floor/, compiled at bench time: the connect floor and S4's servers.
const cBuild = mkdtempSync(join(tmpdir(), 'sb-floor-'));
const floorBinary = join(cBuild, 'connect_floor');
const peersBinary = join(cBuild, 'ggml_rpc_peers');

// The command as a user types it, with its own defaults (the timing included); its JSON report
// gives the open hosts and the scan's in-process time (elapsedMs). Exit 1 is "nothing open".
const cli = (s, ...args) => [process.execPath, CLI, 'scan', s.cidr, '-p', PORT, '--format', 'json', '--open', ...args];
function cliReport(text) {
  const report = JSON.parse(text);
  return { found: report.results.map((r) => r.host), scanMs: report.elapsedMs };
}
// Whether the CLI has a choice of timing (issue 21's adaptive timing); before it, an explicit
// --timeout was the only timing there was, so fixed timing is asked for by name only here.
let cliTimingFlag;
function cliKnowsTiming() {
  cliTimingFlag ??= spawnSync(process.execPath, [CLI, 'scan', '--help'], { encoding: 'utf8' }).stdout.includes(
    '--timing',
  );
  return cliTimingFlag;
}
const cliFixed = () => [...(cliKnowsTiming() ? ['--timing', 'fixed'] : []), '--timeout', TIMEOUT_MS];
const CLI_NATIVE = { name: 'scan-backends CLI native', ours: true, judged: true, okCodes: [0, 1], parse: cliReport };
const ourCli = {
  native: { ...CLI_NATIVE, argv: (s) => cli(s, '--engine', 'native') },
  js: { ...CLI_NATIVE, name: 'scan-backends CLI js', argv: (s) => cli(s, '--engine', 'js') },
  fixed: {
    ...CLI_NATIVE,
    name: `scan-backends CLI native, fixed ${TIMEOUT_MS / 1000} s`,
    judged: false,
    argv: (s) => cli(s, '--engine', 'native', ...cliFixed()),
  },
};
const nmapAdaptive = {
  name: 'nmap -sT, adaptive, --max-retries 0',
  needs: ['nmap', 'nmap'],
  judged: true,
  argv: (s) => nmapArgv(s, ['--max-retries', '0', '--min-hostgroup', '256', '--min-parallelism', '256']),
};
const nmapDefaults = { name: 'nmap -sT (default timing)', needs: ['nmap', 'nmap'], argv: (s) => nmapArgv(s, []) };
const floorOne = {
  name: 'C floor, 1 process',
  needs: ['cc', 'gcc'],
  floor: true,
  argv: (s) => [floorBinary, s.first, s.last, PORT, TIMEOUT_MS, 1],
};

/** Contenders: argv for a scenario, and what they need from the machine. */
const CONTENDERS = [
  ourCli.native,
  ourCli.js,
  ourCli.fixed,
  // The library's streaming API in one process, at the 1 s timeout every fixed-timeout row shares.
  {
    name: 'scan-backends native',
    ours: true,
    argv: (s) => node('scan-backends.mjs', 'native', s.cidr, PORT, TIMEOUT_MS),
  },
  { name: 'scan-backends js', ours: true, argv: (s) => node('scan-backends.mjs', 'js', s.cidr, PORT, TIMEOUT_MS) },
  {
    name: 'python baseline (50 threads)',
    needs: ['python3', 'python3'],
    argv: (s) => ['python3', join(BENCH, 'contenders', 'python_baseline.py'), s.first, s.last, PORT],
  },
  nmapAdaptive,
  nmapDefaults,
  { name: 'nmap -sT -T4', needs: ['nmap', 'nmap'], argv: (s) => nmapArgv(s, ['-T4']) },
  {
    name: 'nmap -sT, fixed 1 s timeout',
    needs: ['nmap', 'nmap'],
    argv: (s) =>
      nmapArgv(s, [
        '--max-retries',
        '0',
        '--initial-rtt-timeout',
        '1000ms',
        '--min-rtt-timeout',
        '1000ms',
        '--max-rtt-timeout',
        '1000ms',
        '--min-hostgroup',
        '4096',
        '--min-parallelism',
        '4096',
      ]),
  },
  {
    name: 'evilscan (concurrency 1000)',
    module: 'evilscan',
    argv: (s) => node('evilscan.mjs', s.cidr, PORT, TIMEOUT_MS),
  },
  { name: 'naive net.connect + p-limit 256', argv: (s) => node('naive.mjs', s.first, s.last, PORT, TIMEOUT_MS) },
  floorOne,
  {
    name: `C floor, ${cpus().length} processes`,
    needs: ['cc', 'gcc'],
    floor: true,
    argv: (s) => [floorBinary, s.first, s.last, PORT, TIMEOUT_MS, cpus().length],
  },
];

function nmapArgv(s, extra) {
  return [join(BENCH, 'contenders', 'nmap.sh'), '-p', String(PORT), ...extra, s.nmap];
}

const SCENARIOS = {
  S1: {
    name: 'S1 seed /24',
    grid: '254 targets: .45 and .48 open, .154 closed, 251 silent',
    cidr: '127.0.0.0/24',
    first: '127.0.0.1',
    last: '127.0.0.254',
    nmap: '127.0.0.1-254',
    targets: 254,
    truth: ['127.0.0.45', '127.0.0.48'],
    setup: () => firewall(['127.0.0.45', '127.0.0.48', '127.0.0.154']),
    listeners: ['127.0.0.45', '127.0.0.48'],
    // Issue 21: the found set exact in 20 of 20 runs, both engines.
    judgedRuns: 20,
  },
  S2: {
    name: 'S2 closed /24',
    grid: '254 targets, all refused',
    cidr: '127.0.0.0/24',
    first: '127.0.0.1',
    last: '127.0.0.254',
    nmap: '127.0.0.1-254',
    targets: 254,
    truth: [],
    setup: () => firewall(['127.0.0.0/8']),
    listeners: [],
    judgedRuns: 20,
  },
  S3: {
    name: 'S3 /16 throughput',
    grid: '65,534 targets, all refused',
    // nmap takes the whole /16 (65,536 addresses); the rest skip network and broadcast.
    cidr: '127.0.0.0/16',
    first: '127.0.0.1',
    last: '127.0.255.254',
    nmap: '127.0.0.0/16',
    targets: 65534,
    truth: [],
    setup: () => firewall(['127.0.0.0/8']),
    listeners: [],
  },
  S4: {
    name: 'S4 verify a busy /24',
    grid: '254 ggml-rpc servers, scan + ggml-rpc probe',
    cidr: '127.0.0.0/24',
    first: '127.0.0.1',
    last: '127.0.0.254',
    nmap: '127.0.0.1-254',
    targets: 254,
    truth: Array.from({ length: 254 }, (_, i) => `127.0.0.${i + 1}`),
    setup: () => firewall(['127.0.0.0/8']),
    // 254 servers in one C process (bench/floor/ggml_rpc_peers.c): Node peers would spend more
    // CPU answering than the scanner spends asking, and S4 would measure them.
    peers: true,
    needs: ['cc', 'gcc'],
    contenders: [
      {
        name: 'scan-backends native + probe',
        ours: true,
        argv: (s) => node('scan-backends.mjs', 'native', s.cidr, PORT, TIMEOUT_MS, '--probe'),
      },
      {
        name: 'scan-backends js + probe',
        ours: true,
        argv: (s) => node('scan-backends.mjs', 'js', s.cidr, PORT, TIMEOUT_MS, '--probe'),
      },
      {
        name: 'scan-backends native, connect only',
        ours: true,
        argv: (s) => node('scan-backends.mjs', 'native', s.cidr, PORT, TIMEOUT_MS),
      },
      {
        name: 'scan-backends native, probe of one server',
        ours: true,
        single: true,
        argv: () => node('scan-backends.mjs', 'native', '127.0.0.1', PORT, TIMEOUT_MS, '--probe'),
      },
    ],
  },
  S5: {
    name: 'S5 lossy host',
    grid: "S1's /24, .48's first SYN from each source dropped (the next one passes)",
    cidr: '127.0.0.0/24',
    first: '127.0.0.1',
    last: '127.0.0.254',
    nmap: '127.0.0.1-254',
    targets: 254,
    truth: ['127.0.0.45', '127.0.0.48'],
    // The host a contender finds only if it tries twice; counted run by run.
    watch: '127.0.0.48',
    setup: () => firewall(['127.0.0.45', '127.0.0.48', '127.0.0.154'], { lossy: '127.0.0.48' }),
    // Every run starts with .48's first SYN still to be lost.
    beforeRun: () => execFileSync('nft', ['flush', 'set', 'inet', 'bench', 'lossy']),
    listeners: ['127.0.0.45', '127.0.0.48'],
    // Missing .48 is what S5 measures: a fault only of our defaults, once they retry.
    reported: true,
    runs: { quick: 2, full: 20 },
    // nmap's defaults find .48 through their retries but take ~7 s a run.
    contenders: [ourCli.native, ourCli.js, ourCli.fixed, nmapAdaptive, { ...nmapDefaults, runs: { full: 3 } }],
  },
  S6: {
    name: 'S6 silent /20',
    grid: '4,094 targets, all silent',
    // nmap takes the whole /20 (4,096 addresses).
    cidr: '127.0.0.0/20',
    first: '127.0.0.1',
    last: '127.0.15.254',
    nmap: '127.0.0.0/20',
    targets: 4094,
    truth: [],
    setup: () => firewall([]),
    listeners: [],
    runs: { quick: 1, full: 3 },
    contenders: [ourCli.native, ourCli.fixed, nmapAdaptive, floorOne],
  },
};

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** What a contender printed: open hosts one a line, its scan time (if any) on stderr. */
function printedHosts(text, stderr) {
  const elapsed = /elapsedMs=(\d+)/.exec(stderr);
  return { found: text.split('\n').filter(Boolean), scanMs: elapsed ? Number(elapsed[1]) : undefined };
}

/** One run of one contender: costs from measure.py, the open set it printed, right or wrong. */
function runOnce(contender, argv, truth, watch) {
  const out = join(mkdtempSync(join(tmpdir(), 'sb-bench-')), 'out');
  const measured = JSON.parse(
    execFileSync('python3', [join(BENCH, 'measure.py'), out, ...argv.map(String)], { encoding: 'utf8' }),
  );
  const exited = (contender.okCodes ?? [0]).includes(measured.code);
  const text = readFileSync(out, 'utf8');
  const { found, scanMs } = exited ? (contender.parse ?? printedHosts)(text, measured.stderr) : { found: [] };
  found.sort();
  const expected = [...truth].sort();
  const correct = exited && found.length === expected.length && found.every((h, i) => h === expected[i]);
  return { ...measured, found: found.length, correct, scanMs, sawWatched: watch ? found.includes(watch) : undefined };
}

/** Runs of a contender: --reps, a scenario's own count, the rows its goals judge, else 5 (quick: 1). */
function runsOf(scenario, contender) {
  if (values.reps) return Number(values.reps);
  const counts = contender.runs ?? scenario.runs;
  if (counts) return counts[quick ? 'quick' : 'full'] ?? 0;
  return quick ? 1 : contender.judged && scenario.judgedRuns ? scenario.judgedRuns : 5;
}

async function startScenario(scenario) {
  scenario.setup();
  const stops = [];
  const { createServer } = await import('node:net');
  for (const host of scenario.listeners ?? []) {
    const server = createServer((socket) => socket.destroy());
    await new Promise((resolve) => server.listen(PORT, host, resolve));
    stops.push(() => new Promise((resolve) => server.close(resolve)));
  }
  if (scenario.peers) {
    const peers = spawn(peersBinary, [scenario.first, scenario.last, String(PORT)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    await new Promise((resolve, reject) => {
      peers.stdout.once('data', resolve);
      peers.once('exit', (code) => reject(new Error(`peers exited with ${code}`)));
    });
    stops.push(
      () =>
        new Promise((resolve) => {
          peers.once('exit', resolve);
          peers.stdin.end();
        }),
    );
  }
  return () => Promise.all(stops.map((stop) => stop()));
}

const quick = values.quick;
const reps = Number(values.reps ?? (quick ? 1 : 5));
const DAEMONS = ['startup', 'watch', 'serve'];
const chosen = (values.scenario ?? (quick ? 'S1,S2,S4,S5' : 'S1,S2,S3,S4,S5,S6') + `,${DAEMONS}`).split(',');
const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  kernel: release(),
  node: process.version,
  nofile: execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim(),
};
console.log(
  `scan-backends bench: ${chosen.join(', ')}, ${reps} run${reps === 1 ? '' : 's'} each (more where said), fixed timeout ${TIMEOUT_MS} ms`,
);
console.log(
  `machine: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, Node ${machine.node}, RLIMIT_NOFILE ${machine.nofile}`,
);

if (have('cc')) {
  execFileSync('cc', ['-O2', '-o', floorBinary, join(BENCH, 'floor', 'connect_floor.c')]);
  execFileSync('cc', ['-O2', '-o', peersBinary, join(BENCH, 'floor', 'ggml_rpc_peers.c')]);
}

const date = new Date().toISOString().slice(0, 10);
const all = [];
let oursWrong = false;
for (const key of chosen.filter((k) => !DAEMONS.includes(k))) {
  const scenario = SCENARIOS[key];
  if (!scenario) throw new Error(`unknown scenario ${key}`);
  console.log(`${scenario.name} (${scenario.grid})`);
  if (scenario.needs && !have(scenario.needs[0])) {
    console.log(`skipped ${scenario.name}: ${scenario.needs[0]} not found (Debian package ${scenario.needs[1]})`);
    continue;
  }
  const stop = await startScenario(scenario);
  const rows = [];
  try {
    for (const contender of scenario.contenders ?? CONTENDERS) {
      if (contender.needs && !have(contender.needs[0])) {
        console.log(
          `  skipped ${contender.name}: ${contender.needs[0]} not found (Debian package ${contender.needs[1]})`,
        );
        continue;
      }
      if (contender.module && !resolvable(contender.module)) {
        console.log(`  skipped ${contender.name}: ${contender.module} not installed (npm --prefix bench ci)`);
        continue;
      }
      const count = runsOf(scenario, contender);
      if (count === 0) {
        console.log(`  skipped ${contender.name}: full runs only`);
        continue;
      }
      const truth = contender.single ? ['127.0.0.1'] : scenario.truth;
      const runs = [];
      for (let r = 0; r < count; r++) {
        scenario.beforeRun?.();
        runs.push(runOnce(contender, contender.argv(scenario), truth, scenario.watch));
      }
      const walls = runs.map((r) => r.wallS * 1000);
      const cpu = runs.map((r) => (r.userS + r.sysS) * 1000);
      const scans = runs.map((r) => r.scanMs).filter((ms) => ms !== undefined);
      const row = {
        contender: contender.name,
        ours: Boolean(contender.ours),
        floor: Boolean(contender.floor),
        runs: count,
        correctRuns: runs.filter((r) => r.correct).length,
        correct: runs.every((r) => r.correct),
        watchedRuns: scenario.watch ? runs.filter((r) => r.sawWatched).length : undefined,
        found: runs[0].found,
        medianMs: median(walls),
        minMs: Math.min(...walls),
        maxMs: Math.max(...walls),
        spreadMs: Math.max(...walls) - Math.min(...walls),
        cpuMs: median(cpu),
        peakRssMiB: Math.max(...runs.map((r) => r.maxRssKiB)) / 1024,
        scanMs: scans.length > 0 ? median(scans) : undefined,
        targetsPerS: (contender.single ? 1 : scenario.targets) / (median(walls) / 1000),
        errors: runs
          .filter((r) => !(contender.okCodes ?? [0]).includes(r.code))
          .map((r) => r.stderr.trim().split('\n').at(-1)),
      };
      // A scenario that measures misses reports them (a crash is still wrong there), but our
      // defaults must find everything once they have adaptive timing and its retry.
      const mustBeExact = !scenario.reported || (contender.ours && contender.judged && cliKnowsTiming());
      if (row.ours && (mustBeExact ? !row.correct : row.errors.length > 0)) oursWrong = true;
      rows.push(row);
      const watched = scenario.watch ? `, ${scenario.watch} in ${row.watchedRuns}/${count} runs` : '';
      console.log(
        `  ${row.correct ? 'ok   ' : !mustBeExact && row.errors.length === 0 ? 'miss ' : 'WRONG'} ${row.contender}: ${row.medianMs.toFixed(0)} ms median (${row.minMs.toFixed(0)}-${row.maxMs.toFixed(0)}), exact in ${row.correctRuns}/${count}${watched}${row.errors.length ? ` (${row.errors[0]})` : ''}`,
      );
    }
  } finally {
    await stop();
  }
  all.push({ key, scenario: scenario.name, grid: scenario.grid, targets: scenario.targets, rows });
}

execFileSync('nft', ['flush', 'ruleset']);
// Start-up: bare Node, --help and a one-port scan in turns (bench/startup.mjs).
let startup;
if (chosen.includes('startup')) {
  startup = await runStartup({ runs: quick ? 3 : 21 });
  console.log(describeStartup(startup));
  if (startup.wrong) {
    console.log(`  WRONG start-up: ${startup.wrong}`);
    oursWrong = true;
  }
}

// The watch daemon over time (quick: a short soak, still checked for correctness).
let watch;
if (chosen.includes('watch')) {
  const { runWatchSoak } = await import('./watch-soak.mjs');
  watch = await runWatchSoak({ quick });
  if (watch.wrong) oursWrong = true;
}
let serve;
if (chosen.includes('serve')) {
  const { runServeBench } = await import('./serve-bench.mjs');
  serve = await runServeBench({ quick });
  if (serve.wrong) oursWrong = true;
}

if (!quick) {
  const { writeResults } = await import('./report.mjs');
  await writeResults({ date, machine, reps, timeoutMs: TIMEOUT_MS, scenarios: all, startup, watch, serve });
}
process.exit(oursWrong ? 1 : 0);
