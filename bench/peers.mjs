// 254 ggml-rpc servers (.1-.254, port 50052) in a process of their own, so the runner's
// synchronous measurements never stall them. Prints "ready", exits when stdin closes.
import { startGgmlRpcPeer } from '../dist/demo/ggml-rpc-peer.js';

const peers = [];
for (let i = 1; i <= 254; i++)
  peers.push(await startGgmlRpcPeer({ generation: '5.x', host: `127.0.0.${i}`, port: 50052 }));
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', async () => {
  await Promise.all(peers.map((p) => p.close()));
  process.exit(peers.some((p) => p.dead) ? 1 : 0);
});
