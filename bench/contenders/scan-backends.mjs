// scan-backends itself, through its public streaming API (the way a /16 is meant to be read:
// scanAll would keep and sort 65,536 result objects). Prints open hosts (with --probe: those
// that answered as ggml-rpc servers), one a line.
// usage: scan-backends.mjs native|js TARGETS PORT TIMEOUT_MS [--probe]
// TIMEOUT_MS is a fixed per-attempt timeout, the one every fixed-timeout contender shares; a
// library without `timing` ignores the option and has no other.
import { performance } from 'node:perf_hooks';

import { scan } from '../../dist/index.js';

const [engine, targets, port, timeoutMs, probe] = process.argv.slice(2);
const started = performance.now();
const job = scan(targets, {
  engine,
  ports: Number(port),
  timeoutMs: Number(timeoutMs),
  timing: 'fixed',
  allowLarge: true,
  probe: probe === '--probe' ? ['ggml-rpc'] : false,
});
if (job.engine !== engine) throw new Error(`asked for ${engine}, ran ${job.engine}`);
const found = [];
for await (const r of job) {
  if (r.state === 'open' && (probe !== '--probe' || r.service === 'ggml-rpc')) found.push(r.host);
}
process.stdout.write(found.map((host) => `${host}\n`).join(''));
// The scan's own time, without Node's start-up: the S4 goal is about the scan.
process.stderr.write(`elapsedMs=${Math.round(performance.now() - started)}\n`);
