// scan-backends itself, through its public API. Prints open hosts (with --probe: those that
// answered as ggml-rpc servers), one a line.
// usage: scan-backends.mjs native|js TARGETS PORT TIMEOUT_MS [--probe]
import { scanAll } from '../../dist/index.js';

const [engine, targets, port, timeoutMs, probe] = process.argv.slice(2);
const report = await scanAll(targets, {
  engine,
  ports: Number(port),
  timeoutMs: Number(timeoutMs),
  allowLarge: true,
  probe: probe === '--probe' ? ['ggml-rpc'] : false,
});
if (report.engine !== engine) throw new Error(`asked for ${engine}, ran ${report.engine}`);
const found = report.results.filter((r) => r.state === 'open' && (probe !== '--probe' || r.service === 'ggml-rpc'));
process.stdout.write(found.map((r) => `${r.host}\n`).join(''));
// The scan's own time, without Node's start-up: the S4 goal is about the scan.
process.stderr.write(`elapsedMs=${report.elapsedMs}\n`);
