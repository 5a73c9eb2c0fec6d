// A cluster primary and one worker, both scanning with the native engine at once. The primary
// kills the worker mid-scan and prints its own report as JSON. Uses the built package.
import cluster from 'node:cluster';

import { scanAll } from '../../dist/index.js';

const targets = '127.0.0.0/24';
if (cluster.isPrimary) {
  const mine = scanAll(targets, { engine: 'native', timeoutMs: 1500 });
  const worker = cluster.fork();
  worker.on('message', (m) => {
    if (m === 'scanning') setTimeout(() => worker.process.kill('SIGKILL'), 200);
  });
  const exited = new Promise((resolve) => worker.on('exit', (code, signal) => resolve(signal)));
  const report = await mine;
  console.log(JSON.stringify({ workerSignal: await exited, report }));
} else {
  const scan = scanAll(targets, { engine: 'native', timeoutMs: 10_000 });
  process.send('scanning');
  await scan;
}
