// Runs one scan in a worker thread with the built package, posting 'started' and the report.
import { parentPort, workerData } from 'node:worker_threads';

import { scanAll } from '../../dist/index.js';

parentPort.postMessage({ type: 'started' });
const report = await scanAll(workerData.targets, workerData.options);
parentPort.postMessage({ type: 'report', report });
