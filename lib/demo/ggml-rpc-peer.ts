// A ggml-rpc server for the demo, the tests and the benches, written from llama.cpp's protocol
// (docs/ggml-rpc-wire.md):
// protocol generations 5.x (24-byte caps HELLO), 3.x (empty HELLO, device index) and 2.x (no
// DEVICE_COUNT). Like the real server it serves one client at a time and never times a client
// out, drops the other generation's HELLO with EOF (5.x) or RST (older), and "dies of SIGPIPE"
// when it answers a client that closed with FIN while queued.
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';

export type Generation = '5.x' | '3.x' | '2.x';

export interface PeerOptions {
  generation: Generation;
  host: string;
  port?: number;
  version?: [number, number, number];
  devices?: { freeBytes: number; totalBytes: number }[];
}

export interface GgmlRpcPeer {
  port: number;
  /** Events in order: "accepted", "hello", "closed", "reset", "died: …". */
  log: string[];
  /** True once the peer would have died of SIGPIPE; it no longer listens then. */
  readonly dead: boolean;
  /** Connections made to it so far, served or still waiting in its queue. */
  readonly connections: number;
  close(): Promise<void>;
}

const DEFAULT_VERSION: Record<Generation, [number, number, number]> = {
  '5.x': [5, 0, 0],
  '3.x': [3, 6, 1],
  '2.x': [2, 0, 0],
};
const CPU_24_GIB = { freeBytes: 25274793984, totalBytes: 25274793984 };

/**
 * Whether the kernel still holds `socket` in CLOSE_WAIT: the client sent FIN. A client that
 * sent RST leaves no entry. Node reports both as end-of-stream once queued data is read, but
 * the real server tells them apart: its recv fails with ECONNRESET after an RST, while after a
 * FIN it answers and dies of SIGPIPE. Linux /proc only; elsewhere every close counts as RST.
 */
function peerSentFin(socket: Socket): boolean {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (!localAddress || !remoteAddress || localPort === undefined || remotePort === undefined) return false;
  const v4 = (address: string, port: number) =>
    `${Buffer.from(address.split('.').map(Number)).readUInt32LE(0).toString(16).toUpperCase().padStart(8, '0')}:${port
      .toString(16)
      .toUpperCase()
      .padStart(4, '0')}`;
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(localAddress)) return false;
  let table: string;
  try {
    table = readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return false;
  }
  const local = v4(localAddress, localPort);
  const remote = v4(remoteAddress, remotePort);
  const CLOSE_WAIT = '08';
  return table.split('\n').some((line) => {
    const cols = line.trim().split(/\s+/);
    return cols[1] === local && cols[2] === remote && cols[3] === CLOSE_WAIT;
  });
}

function reply(data: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeBigUInt64LE(BigInt(data.length));
  return Buffer.concat([header, data]);
}

export async function startGgmlRpcPeer(options: PeerOptions): Promise<GgmlRpcPeer> {
  const version = options.version ?? DEFAULT_VERSION[options.generation];
  const devices = options.devices ?? [CPU_24_GIB];
  const modern = options.generation === '5.x';
  const multiDevice = options.generation !== '2.x';
  const queue: Socket[] = [];
  const all = new Set<Socket>();
  const log: string[] = [];
  let serving = false;
  let dead = false;
  let connections = 0;

  const waitedSockets = new WeakSet<Socket>();
  // allowHalfOpen: a client's FIN must not close our side, so a half-closed client can read replies.
  const server: Server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
    if (serving) waitedSockets.add(socket);
    connections += 1;
    all.add(socket);
    socket.on('close', () => all.delete(socket));
    socket.on('error', () => {});
    queue.push(socket);
    serveNext();
  });

  const die = (why: string) => {
    dead = true;
    log.push(`died: ${why}`);
    server.close();
    for (const s of all) s.destroy();
  };

  function serveNext(): void {
    if (serving || dead) return;
    const socket = queue.shift();
    if (!socket) return;
    const waited = waitedSockets.has(socket);
    serving = true;
    log.push('accepted');
    serve(socket, waited, () => {
      serving = false;
      serveNext();
    });
  }

  function serve(socket: Socket, waited: boolean, done: () => void): void {
    let buffer = Buffer.alloc(0);
    let helloDone = false;
    let clientEnded = false;
    let finished = false;
    const finish = (how: 'closed' | 'reset' | 'fin', event: string) => {
      if (finished) return;
      finished = true;
      log.push(event);
      if (how === 'reset') socket.resetAndDestroy();
      else if (how === 'fin') socket.end(() => socket.destroy());
      else socket.destroy(); // the client closed first
      done();
    };
    // The real server closes with unread bytes in its buffer, which the kernel turns into RST.
    const close = (event: string, unread: number) => finish(unread > 0 ? 'reset' : 'fin', event);
    let answeredAfterFin = false;
    const send = (data: Buffer) => {
      const framed = reply(data);
      if (!clientEnded) {
        socket.write(framed);
        return;
      }
      // Like the real server, the header and the body go out in two sends: a client that
      // closed fully answers the first with RST, and the second raises EPIPE, which the
      // real server does not ignore: it dies of SIGPIPE. A half-closed client reads both.
      answeredAfterFin = true;
      socket.write(framed.subarray(0, 8));
      setTimeout(() => {
        if (!socket.destroyed) socket.write(framed.subarray(8));
      }, 5);
      // No EPIPE within 50 ms: the client only half-closed and read the reply; it is done.
      setTimeout(() => finish('closed', 'closed'), 50);
    };
    const handle = () => {
      while (!finished && !dead && buffer.length >= 9) {
        const cmd = buffer[0] as number;
        const size = buffer.readBigUInt64LE(1);
        if (!helloDone && cmd !== 14) return close('closed: expected HELLO', buffer.length - 1);
        if (cmd === 14) {
          if (helloDone) return close('closed: second HELLO', buffer.length - 9);
          const wanted = modern ? 24n : 0n;
          if (size !== wanted) {
            // 5.x reads the header, logs the size mismatch and closes (EOF); 3.x/2.x fail
            // reading a 0-byte body with 24 bytes pending and close (RST).
            return modern
              ? finish('fin', 'closed: HELLO size mismatch')
              : close('closed: HELLO size mismatch', buffer.length - 9);
          }
          if (buffer.length < 9 + Number(size)) return;
          buffer = buffer.subarray(9 + Number(size));
          helloDone = true;
          log.push('hello');
          send(modern ? Buffer.concat([Buffer.from([...version, 0]), Buffer.alloc(24)]) : Buffer.from(version));
          continue;
        }
        if (cmd === 15 && multiDevice && size === 0n) {
          buffer = buffer.subarray(9);
          const count = Buffer.alloc(4);
          count.writeUInt32LE(devices.length);
          send(count);
          continue;
        }
        if (cmd === 11) {
          const wanted = multiDevice ? 4n : 0n;
          if (size !== wanted) return close('closed: bad GET_DEVICE_MEMORY', buffer.length - 9);
          if (buffer.length < 9 + Number(size)) return;
          const index = multiDevice ? buffer.readUInt32LE(9) : 0;
          buffer = buffer.subarray(9 + Number(size));
          const device = devices[index];
          if (!device) return close('closed: device index out of range', buffer.length);
          const memory = Buffer.alloc(16);
          memory.writeBigUInt64LE(BigInt(device.freeBytes), 0);
          memory.writeBigUInt64LE(BigInt(device.totalBytes), 8);
          send(memory);
          continue;
        }
        return close(`closed: unknown command ${cmd}`, buffer.length - 1);
      }
    };
    let firstRead = waited;
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      // A connection that waited behind another may have closed meanwhile: the kernel knows
      // (CLOSE_WAIT) before Node reports the end of the stream.
      if (firstRead) {
        firstRead = false;
        if (peerSentFin(socket)) clientEnded = true;
      }
      setImmediate(handle);
    });
    socket.on('end', () => {
      if (answeredAfterFin) return; // the EPIPE, or the timer in send(), settles it
      if (buffer.length === 0) {
        finish('closed', 'closed'); // nothing pending: FIN or RST makes no difference
        return;
      }
      // A request is pending: FIN or RST decides whether answering it kills the server.
      // (Only now is /proc read: it grows with every socket in the namespace.)
      if (!clientEnded && !peerSentFin(socket)) {
        finish('closed', 'reset'); // recv() fails with ECONNRESET: nothing is answered
        return;
      }
      clientEnded = true;
      setImmediate(() => {
        handle();
        if (!answeredAfterFin) finish('closed', 'closed');
      });
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (answeredAfterFin && (error.code === 'EPIPE' || error.code === 'ECONNRESET')) {
        die('SIGPIPE answering a client that had closed');
        return;
      }
      finish('closed', error.code === 'ECONNRESET' ? 'reset' : `error ${error.code}`);
    });
    socket.resume();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port ?? 0, backlog: 1 }, () => resolve());
  });
  const peer: GgmlRpcPeer = {
    port: (server.address() as { port: number }).port,
    log,
    get dead() {
      return dead;
    },
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of all) s.destroy();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  };
  return peer;
}
