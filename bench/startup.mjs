// Start-up of a one-shot command against bare Node: `node -e 0`, `scan-backends --help` and a
// scan of one refused port on 127.0.0.1, taken in turns so all three see the same machine.
// The goal (issues 11 and 21) is at most 20 ms of ours over bare Node for the one-port scan.
// Run by bench/run.mjs; alone: node bench/startup.mjs [--runs N]
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
export const STARTUP_GOAL_MS = 20;

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const summary = (xs) => ({ medianMs: median(xs), minMs: Math.min(...xs), maxMs: Math.max(...xs) });

/** A port on 127.0.0.1 that refuses: one the kernel just gave us, closed again. */
async function refusedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function timed(argv, check) {
  const started = performance.now();
  const run = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  const ms = performance.now() - started;
  return { ms, wrong: check(run) };
}

/** Median, min and max of each command over `runs` rounds; `wrong` names a command that misbehaved. */
export async function runStartup({ runs }) {
  const port = await refusedPort();
  const commands = {
    bare: { argv: [process.execPath, '-e', '0'], check: (r) => r.status !== 0 },
    help: { argv: [process.execPath, CLI, '--help'], check: (r) => r.status !== 0 || !r.stdout.includes('Usage') },
    scan: {
      argv: [process.execPath, CLI, 'scan', '127.0.0.1', '-p', String(port), '--format', 'json'],
      // Exit 1: nothing open; the port must be reported closed, not silent.
      check: (r) => r.status !== 1 || !r.stdout.includes('"state":"closed"'),
    },
  };
  const times = { bare: [], help: [], scan: [] };
  let wrong;
  for (let i = 0; i < runs; i++) {
    for (const [name, { argv, check }] of Object.entries(commands)) {
      const run = timed(argv, check);
      if (run.wrong) wrong ??= `${name}: ${argv.slice(1).join(' ')}`;
      times[name].push(run.ms);
    }
  }
  const bare = summary(times.bare);
  const help = summary(times.help);
  const scan = summary(times.scan);
  return {
    runs,
    bare,
    help,
    scan,
    helpOverMs: help.medianMs - bare.medianMs,
    overMs: scan.medianMs - bare.medianMs,
    goalMs: STARTUP_GOAL_MS,
    wrong,
  };
}

export function describeStartup(st) {
  const f = (s) => `${s.medianMs.toFixed(0)} ms (${s.minMs.toFixed(0)}-${s.maxMs.toFixed(0)})`;
  // Noise can put a median under bare Node's.
  const over = (ms) => `${ms < 0 ? '' : '+'}${ms.toFixed(0)} ms`;
  return [
    `start-up (${st.runs} runs each, median (min-max)): node -e 0 ${f(st.bare)}; --help ${f(st.help)}, ${over(st.helpOverMs)};`,
    `  scan of one refused port ${f(st.scan)}, ${over(st.overMs)} over bare Node (goal <= ${st.goalMs} ms: ${st.overMs <= st.goalMs ? 'met' : 'not met'})`,
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '21' } } });
  const st = await runStartup({ runs: Number(values.runs) });
  console.log(describeStartup(st));
  if (st.wrong) {
    console.log(`WRONG start-up: ${st.wrong}`);
    process.exit(1);
  }
}
