// A small real process standing in for llama-server under `scan-backends run`: it takes
// --rpc LIST (or --rpc=LIST), --host and --port (its HTTP), connects to each rpc server and
// holds the connection (HELLO sent, as a coordinator does), serves /health (503 until every
// server is connected and --load-ms passed, then 200) and /slots (is_processing while the file
// --busy-file names exists). When a server connection closes it exits 134, as llama.cpp's
// abort does, or with --on-loss stay lives on (llama-server aborts only at its next request);
// --exit-after MS makes it exit 1 on its own (a crash); --connect-delay MS waits before it
// connects (a slow start). SIGTERM ends it (0).
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';

function flag(name) {
  const argv = process.argv;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === name) return argv[i + 1];
    if (argv[i].startsWith(`${name}=`)) return argv[i].slice(name.length + 1);
  }
  return undefined;
}

const list = (flag('--rpc') ?? '').split(',').filter(Boolean);
const host = flag('--host') ?? '127.0.0.1';
const port = Number(flag('--port') ?? 8080);
const loadMs = Number(flag('--load-ms') ?? 100);
const busyFile = flag('--busy-file');
const exitAfter = flag('--exit-after');
const stayOnLoss = flag('--on-loss') === 'stay';
let connected = 0;
let loadedAt = Infinity;

console.log(`stand-in: rpc ${list.join(',') || 'none'}`);
if (flag('--tensor-split') !== undefined)
  console.log(`stand-in: tensor-split ${flag('--tensor-split')} ngl ${flag('-ngl')}`);
await new Promise((resolve) => setTimeout(resolve, Number(flag('--connect-delay') ?? 0)));
for (const entry of list) {
  const colon = entry.lastIndexOf(':');
  const socket = connect({ host: entry.slice(0, colon), port: Number(entry.slice(colon + 1)) });
  socket.on('connect', () => {
    const hello = Buffer.alloc(9 + 24);
    hello[0] = 14;
    hello.writeBigUInt64LE(24n, 1);
    socket.write(hello);
    connected += 1;
    if (connected === list.length) loadedAt = Date.now() + loadMs;
  });
  socket.on('data', () => {});
  socket.on('error', () => {});
  socket.on('close', () => {
    if (stayOnLoss) return console.error(`stand-in: lost ${entry}; going on`);
    console.error(`stand-in: lost ${entry}; aborting`);
    process.exit(134);
  });
}
if (list.length === 0) loadedAt = Date.now() + loadMs;

createServer((req, res) => {
  if (req.url === '/health') {
    const ready = Date.now() >= loadedAt;
    res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: ready ? 'ok' : 'loading model' }));
  } else if (req.url === '/slots') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify([{ id: 0, is_processing: busyFile !== undefined && existsSync(busyFile) }]));
  } else {
    res.writeHead(404);
    res.end();
  }
}).listen(port, host);

if (exitAfter !== undefined) setTimeout(() => process.exit(1), Number(exitAfter));
process.on('SIGTERM', () => process.exit(0));
