// The serve command under load, as a real process on loopback:
//   - GET /api/backends for 256 backends: the server's own time (its Server-Timing header)
//   - 100 SSE clients held open: the process's RSS
//   - a state change reaching every open SSE client: event `time` (when the watcher decided)
//     to arrival, over several down events
// Run by bench/run.mjs (inside its namespace); loopback only.
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const { startGgmlRpcPeer } = await import(new URL('../dist/demo/ggml-rpc-peer.js', import.meta.url).href);
const BACKENDS = 256;
const hostOf = (i) => `127.0.${10 + Math.floor(i / 250)}.${(i % 250) + 1}`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function get(url) {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    })
      .on('error', reject)
      .end();
  });
}

function sseClient(url, onEvent) {
  const req = request(`${url}/api/events`, (res) => {
    let buffered = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      const at = Date.now();
      buffered += chunk;
      const blocks = buffered.split('\n\n');
      buffered = blocks.pop();
      for (const block of blocks) {
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (data) onEvent(JSON.parse(data), at);
      }
    });
  });
  req.on('error', () => {});
  req.end();
  return req;
}

export async function runServeBench({ quick }) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-serve-'));
  const config = join(dir, 'rpc_backends.conf');
  const peers = [];
  for (let i = 0; i < BACKENDS; i++) {
    peers.push(await startGgmlRpcPeer({ generation: '5.x', host: hostOf(i), port: 50052 }));
  }
  writeFileSync(config, `${peers.map((_, i) => `${hostOf(i)}:50052`).join('\n')}\n`);
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--format',
      'ndjson',
      '--sources',
      'config',
      '--config',
      config,
      '--listen',
      '127.0.0.1:0',
      '--health-interval',
      '500ms',
      '--fail-after',
      '1',
      '--timeout',
      '500',
      '--http-ports',
      '9',
      '--max-sse-clients',
      '200',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  const results = {};
  const clients = [];
  try {
    const deadline = Date.now() + 60_000;
    while (!/"msg":"first resolve done"/.test(out) && Date.now() < deadline) await sleep(50);
    const url = /"url":"([^"]+)"/.exec(out)?.[1];
    if (!url) throw new Error('serve did not start');

    // GET /api/backends, 256 backends: the server's own time per answer.
    const times = [];
    let count = 0;
    for (let i = 0; i < (quick ? 20 : 200); i++) {
      const answer = await get(`${url}/api/backends`);
      times.push(Number(/dur=([\d.]+)/.exec(answer.headers['server-timing'])?.[1]));
      count = JSON.parse(answer.body).backends.length;
    }
    results.backends = { backends: count, medianMs: median(times), maxMs: Math.max(...times), goalMs: 5 };
    console.log(
      `  serve: GET /api/backends with ${count} backends: ${results.backends.medianMs.toFixed(2)} ms server time median ` +
        `(max ${results.backends.maxMs.toFixed(2)}; goal <= 5 ms: ${results.backends.medianMs <= 5 ? 'met' : 'not met'})`,
    );

    // 100 event-stream clients, and how fast an event reaches them all.
    const latencies = [];
    for (let i = 0; i < 100; i++) {
      clients.push(
        sseClient(url, (event, at) => {
          if (event.type === 'down') latencies.push(at - Date.parse(event.time));
        }),
      );
    }
    await sleep(1500);
    const rssMiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024;
    const downs = quick ? 2 : 5;
    for (let i = 0; i < downs; i++) {
      await peers[i].close();
      const want = (i + 1) * 100;
      const until = Date.now() + 10_000;
      while (latencies.length < want && Date.now() < until) await sleep(20);
    }
    results.sse = {
      clients: 100,
      rssMiB,
      events: latencies.length,
      medianMs: median(latencies),
      maxMs: Math.max(...latencies),
      goal: { latencyMs: 100, rssMiB: 80 },
    };
    console.log(
      `  serve: 100 SSE clients, RSS ${rssMiB.toFixed(1)} MiB (goal <= 80: ${rssMiB <= 80 ? 'met' : 'not met'}); ` +
        `${latencies.length} deliveries of ${downs} down events, decision to arrival ${results.sse.medianMs} ms median, ` +
        `${results.sse.maxMs} ms max (goal <= 100 ms: ${results.sse.maxMs <= 100 ? 'met' : 'not met'})`,
    );
    results.wrong = count !== BACKENDS || latencies.length !== downs * 100;
    if (results.wrong) console.log(`  WRONG serve bench: ${count} backends, ${latencies.length} deliveries`);
    return results;
  } finally {
    for (const c of clients) c.destroy();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
    await Promise.all(peers.map((p) => p.close()));
  }
}
