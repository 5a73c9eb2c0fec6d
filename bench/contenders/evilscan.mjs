// evilscan (npm) with the same timeout and a fair concurrency (its README recommends 1000 for
// large ranges). Prints open hosts, one a line.
// usage: evilscan.mjs TARGET PORT TIMEOUT_MS
import { createRequire } from 'node:module';

const Evilscan = createRequire(import.meta.url)('evilscan');
const [target, port, timeoutMs] = process.argv.slice(2);
const open = [];
await new Promise((resolve, reject) => {
  const scan = new Evilscan({ target, port, status: 'O', timeout: Number(timeoutMs), concurrency: 1000 });
  scan.on('result', (data) => open.push(data.ip));
  scan.on('error', reject);
  scan.on('done', resolve);
  scan.run();
});
process.stdout.write(open.map((h) => `${h}\n`).join(''));
