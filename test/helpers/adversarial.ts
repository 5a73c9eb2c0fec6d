// Peers that misbehave on purpose, for the probes' bounds: each must end in a clear reason
// within the probe timeout, never in a crash, a hang or a leaked descriptor.
import { createServer, type Socket } from 'node:net';

import { servePeer } from './net.js';

export type Misbehaviour =
  | 'silent' // accepts and never writes
  | 'trickle' // writes one byte a second
  | 'random' // writes random bytes at once
  | 'huge-rpc-size' // answers anything with a ggml-rpc size field of 2^63
  | 'huge-h2-frame' // SETTINGS, then a frame header declaring 16 MiB
  | 'rst-mid-frame' // SETTINGS, half a HEADERS frame, then RST
  | 'close-at-once'; // closes right after accept

// A fixed pseudo-random sequence: the same bytes every run, so a failure can be replayed.
function randomBytes(n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = 0x2545f491;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

function behave(socket: Socket, mode: Misbehaviour): void {
  socket.on('error', () => {});
  // Read (and drop) what arrives, so a close from the prober closes this end too.
  socket.resume();
  switch (mode) {
    case 'silent':
      return;
    case 'trickle': {
      let sent = 0;
      const timer = setInterval(() => {
        if (socket.destroyed || sent >= 30) return clearInterval(timer);
        socket.write(Buffer.from([0x01]));
        sent++;
      }, 1000);
      socket.on('close', () => clearInterval(timer));
      socket.write(Buffer.from([0x01]));
      return;
    }
    case 'random':
      socket.write(randomBytes(512));
      return;
    case 'huge-rpc-size':
      socket.once('data', () => socket.write(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x80])));
      return;
    case 'huge-h2-frame':
      socket.once('data', () =>
        socket.write(Buffer.concat([SETTINGS, Buffer.from([0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1])])),
      );
      return;
    case 'rst-mid-frame':
      socket.once('data', () => {
        socket.write(Buffer.concat([SETTINGS, Buffer.from([0, 0, 40, 1, 4, 0, 0, 0, 1, 0x88, 0x00])]), () =>
          setTimeout(() => socket.resetAndDestroy(), 20),
        );
      });
      return;
    case 'close-at-once':
      socket.destroy();
      return;
  }
}

/** Starts a misbehaving peer on `host` (port 0), closed after the test; returns its port. */
export async function misbehavingPeer(mode: Misbehaviour, host: string): Promise<number> {
  return servePeer(
    createServer((socket) => behave(socket, mode)),
    host,
  );
}
