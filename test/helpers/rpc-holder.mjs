// A coordinator-like client: argv carries `--rpc HOST:PORT` like llama-server's, and it holds
// one ggml-rpc connection (HELLO answered) until it is killed, as a coordinator does while it
// serves. Prints "held" once the server answered HELLO.
import { connect } from 'node:net';

const list = process.argv[process.argv.indexOf('--rpc') + 1];
const colon = list.lastIndexOf(':');
const socket = connect({ host: list.slice(0, colon), port: Number(list.slice(colon + 1)) });
socket.on('error', () => process.exit(1));
socket.on('connect', () => {
  const hello = Buffer.alloc(9 + 24);
  hello[0] = 14;
  hello.writeBigUInt64LE(24n, 1);
  socket.write(hello);
});
let got = 0;
socket.on('data', (chunk) => {
  got += chunk.length;
  if (got >= 36) process.stdout.write('held\n');
});
setInterval(() => {}, 60_000);
