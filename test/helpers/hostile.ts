// Servers that speak something other than ggml-rpc, or nothing at all, on 127.0.0.x: what a
// probe meets on a port that is not a backend. Each closed after the test.
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';

import { servePeer } from './net.js';

export type Speaker =
  | 'line' // answers "-ERR unknown command\r\n" to every line, as a line protocol server does
  | 'sink' // accepts, reads, never writes
  | 'reset-at-once' // resets the connection right after accept
  | 'short-body' // HTTP: Content-Length 1000, 5 bytes, close
  | 'ansi-version' // HTTP: /api/version answers a version full of terminal escapes
  | 'h2-settings-flood' // HTTP/2 SETTINGS frames without end
  | 'h2-ping-flood' // HTTP/2 SETTINGS then PINGs without end
  | 'h2-continuation-flood'; // HTTP/2 HEADERS without END_HEADERS, then CONTINUATION without end

const SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const PING = Buffer.from([0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
const HEADERS_OPEN = Buffer.from([0, 0, 1, 1, 0, 0, 0, 0, 1, 0x88]); // :status 200, no END_HEADERS
const CONTINUATION = Buffer.from([0, 0, 4, 9, 0, 0, 0, 0, 1, 0x40, 0x01, 0x61, 0x00]);

/** Writes `chunk` until the socket closes, as fast as the peer reads (bounded: 64 MiB). */
function flood(socket: Socket, first: Buffer, chunk: Buffer): void {
  const block = Buffer.concat(Array.from({ length: 4096 }, () => chunk));
  let sent = 0;
  const pump = () => {
    while (!socket.destroyed && sent < 64 * 1024 * 1024) {
      sent += block.length;
      if (!socket.write(block)) return socket.once('drain', pump);
    }
  };
  socket.write(first);
  pump();
}

/** Starts a misbehaving or foreign server on `host`, port 0; returns its port. */
export async function hostilePeer(kind: Speaker, host: string): Promise<number> {
  if (kind === 'short-body' || kind === 'ansi-version') {
    const server = createHttpServer((req, res) => {
      if (kind === 'short-body') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('{"ve');
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ version: '\u001b]0;pwned\u0007\u001b[2J0.9.\u009b31m1' }));
    });
    return servePeer(server as unknown as Server, host);
  }
  const server = createServer((socket) => {
    switch (kind) {
      case 'line': {
        let text = '';
        socket.on('data', (d: Buffer) => {
          text += d.toString('latin1');
          while (text.includes('\n')) {
            text = text.slice(text.indexOf('\n') + 1);
            socket.write('-ERR unknown command\r\n');
          }
        });
        return;
      }
      case 'sink':
        socket.resume();
        return;
      case 'reset-at-once':
        socket.resetAndDestroy();
        return;
      case 'h2-settings-flood':
        socket.resume();
        return flood(socket, SETTINGS, SETTINGS);
      case 'h2-ping-flood':
        socket.resume();
        return flood(socket, SETTINGS, PING);
      case 'h2-continuation-flood':
        socket.resume();
        socket.once('data', () => flood(socket, Buffer.concat([SETTINGS, HEADERS_OPEN]), CONTINUATION));
        return;
      default:
        return;
    }
  });
  return servePeer(server, host);
}
