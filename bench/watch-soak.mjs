// The watch daemon over time: 16 ggml-rpc peers on 127.0.2.x, `scan-backends watch` as a
// real process, its CPU, RSS and descriptors read from /proc while it works.
//   soak:    health rounds back to back (--health-interval 10ms) until N rounds are done;
//            CPU per round, and whether RSS and the fd count stay flat
//   idle:    the default pace (checked every 5 s): share of one core, RSS
//   latency: a peer killed → `down`, against fail-after × health-interval + timeout; a listed
//            peer started → `added`, against one resolve interval
// Run by bench/run.mjs (inside its namespace); loopback only.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const { startGgmlRpcPeer } = await import(new URL('../dist/demo/ggml-rpc-peer.js', import.meta.url).href);
/** USER_HZ: the unit of utime and stime in /proc/PID/stat. */
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const PEERS = 16;
const hostOf = (i) => `127.0.2.${i + 1}`;

function usage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS;
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  return { cpuMs, rssMiB: rssKiB / 1024, fds };
}

/** A watch process whose stdout lines (events and logs) are parsed as they come. */
function startWatch(args) {
  const child = spawn(process.execPath, [CLI, 'watch', '--format', 'ndjson', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = [];
  let buffered = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop();
    for (const p of parts) lines.push({ at: performance.now(), line: JSON.parse(p) });
  });
  const exited = new Promise((resolve) => child.once('close', resolve));
  return {
    pid: child.pid,
    lines,
    async until(match, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      while (performance.now() < deadline) {
        const found = lines.find((l) => match(l.line));
        if (found) return found;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`watch: nothing matched within ${timeoutMs} ms`);
    },
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function runWatchSoak({ quick, rounds: wantedRounds }) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-soak-'));
  const config = join(dir, 'rpc_backends.conf');
  const peers = [];
  for (let i = 0; i < PEERS; i++)
    peers.push(await startGgmlRpcPeer({ generation: '5.x', host: hostOf(i), port: 50052 }));
  const late = hostOf(PEERS); // listed, started during the latency phase
  writeFileSync(config, [...peers.map((_, i) => `${hostOf(i)}:50052`), `${late}:50052`].join('\n') + '\n');
  const common = ['--sources', 'config', '--config', config, '--log-level', 'info'];
  const results = {};
  try {
    // Idle: the default health interval.
    const idleS = quick ? 10 : 120;
    const idle = startWatch([...common, '--interval', '30s', '--health-interval', '5s']);
    await idle.until((l) => l.msg === 'first resolve done', 10_000);
    await sleep(quick ? 3000 : 6000); // past the first rounds, where the code paths are compiled
    const before = usage(idle.pid);
    const t0 = performance.now();
    await sleep(idleS * 1000);
    const after = usage(idle.pid);
    await idle.stop();
    results.idle = {
      seconds: idleS,
      corePercent: ((after.cpuMs - before.cpuMs) / (performance.now() - t0)) * 100,
      rssMiB: after.rssMiB,
      goal: { corePercent: 1, rssMiB: 64 },
    };
    console.log(
      `  watch idle (16 backends, every 5 s, ${idleS} s): ${results.idle.corePercent.toFixed(2)} % of one core ` +
        `(goal <= 1 %: ${results.idle.corePercent <= 1 ? 'met' : 'not met'}); RSS ${after.rssMiB.toFixed(1)} MiB ` +
        `(goal <= 64: ${after.rssMiB <= 64 ? 'met' : 'not met'})`,
    );

    // Latency: down within fail-after × health-interval + timeout; added within one interval.
    const [healthMs, intervalMs, timeoutMs, failAfter] = [1000, 2000, 1000, 3];
    const lat = startWatch([
      ...common,
      '--interval',
      `${intervalMs}ms`,
      '--health-interval',
      `${healthMs}ms`,
      '--timeout',
      String(timeoutMs),
      '--fail-after',
      String(failAfter),
    ]);
    await lat.until((l) => l.msg === 'first resolve done', 10_000);
    const victim = peers.pop();
    const killed = performance.now();
    await victim.close();
    const down = await lat.until((l) => l.type === 'down', 30_000);
    const started2 = performance.now();
    peers.push(await startGgmlRpcPeer({ generation: '5.x', host: late, port: 50052 }));
    const added = await lat.until((l) => l.type === 'added' && l.backend.host === late, 30_000);
    await lat.stop();
    results.latency = {
      downMs: down.at - killed,
      downBoundMs: failAfter * healthMs + timeoutMs,
      addedMs: added.at - started2,
      addedBoundMs: intervalMs,
    };
    console.log(
      `  watch latency: down after ${results.latency.downMs.toFixed(0)} ms (bound ${results.latency.downBoundMs}); ` +
        `added after ${results.latency.addedMs.toFixed(0)} ms (bound ${results.latency.addedBoundMs})`,
    );
    // Soak last: its TIME_WAIT sockets (a minute each) would weigh on the others' /proc reads.
    // Soak: rounds back to back; the heartbeat line each second carries the round count.
    const rounds = wantedRounds ?? (quick ? 300 : 10_000);
    const soak = startWatch([...common, '--interval', '1h', '--health-interval', '10ms', '--heartbeat', '1s']);
    await soak.until((l) => l.msg === 'first resolve done', 10_000);
    const samples = [];
    let done = 0;
    const started = performance.now();
    while (done < rounds && performance.now() - started < 30 * 60_000) {
      await sleep(1000);
      const beat = soak.lines.filter((l) => l.line.msg === 'heartbeat').at(-1)?.line;
      done = beat?.healthRounds ?? 0;
      samples.push({ rounds: done, ...usage(soak.pid) });
    }
    const events = soak.lines.filter((l) => 'schema' in l.line).length;
    await soak.stop();
    const warm = samples[Math.min(samples.length - 1, Math.floor(samples.length / 10))];
    const last = samples.at(-1);
    results.soak = {
      rounds: last.rounds,
      seconds: (performance.now() - started) / 1000,
      cpuMsPerRound: (last.cpuMs - warm.cpuMs) / Math.max(1, last.rounds - warm.rounds),
      rssMiB: { afterWarmup: warm.rssMiB, last: last.rssMiB, max: Math.max(...samples.map((s) => s.rssMiB)) },
      fds: { afterWarmup: warm.fds, last: last.fds, max: Math.max(...samples.map((s) => s.fds)) },
      // 16 added events and nothing else: no peer ever looked down under the load.
      events,
    };
    console.log(
      `  watch soak: ${last.rounds} health rounds over ${PEERS} peers in ${results.soak.seconds.toFixed(0)} s; ` +
        `${results.soak.cpuMsPerRound.toFixed(2)} ms CPU per round; RSS ${warm.rssMiB.toFixed(1)} → ${last.rssMiB.toFixed(1)} MiB ` +
        `(max ${results.soak.rssMiB.max.toFixed(1)}); fds ${warm.fds} → ${last.fds}; ${events} events`,
    );

    results.wrong = results.soak.events !== PEERS;
    if (results.wrong) console.log(`  WRONG watch soak: ${results.soak.events} events, expected ${PEERS} (added)`);
    return results;
  } finally {
    await Promise.all(peers.map((p) => p.close()));
  }
}
