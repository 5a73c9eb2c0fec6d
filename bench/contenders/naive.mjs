// What a user writes by hand: net.connect under p-limit(256), a 1 s timer per socket.
// usage: naive.mjs FIRST_ADDRESS LAST_ADDRESS PORT TIMEOUT_MS
import { connect } from 'node:net';

import pLimit from 'p-limit';

const [first, last, port, timeoutMs] = process.argv.slice(2);
const toInt = (a) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const toAddress = (n) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
const limit = pLimit(256);
const tries = [];
for (let n = toInt(first); n <= toInt(last); n++) {
  const host = toAddress(n);
  tries.push(
    limit(
      () =>
        new Promise((resolve) => {
          const socket = connect({ host, port: Number(port) });
          const done = (open) => {
            clearTimeout(timer);
            socket.destroy();
            resolve(open ? host : null);
          };
          const timer = setTimeout(() => done(false), Number(timeoutMs));
          socket.once('connect', () => done(true));
          socket.once('error', () => done(false));
        }),
    ),
  );
}
process.stdout.write(
  (await Promise.all(tries))
    .filter(Boolean)
    .map((h) => `${h}\n`)
    .join(''),
);
