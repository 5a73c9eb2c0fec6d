// A crowd of slow HTTP clients, as issue 18's attacker: each connection sends one header line
// every 2 s and never ends its headers ('drip'), or sends nothing ('silent'). A connection the
// server closes is opened again after a pause, so the crowd stays at its size for as long as it
// runs. Spread over several source addresses of 127.0.0.0/8 with `localAddress`.
import { connect, type Socket } from 'node:net';

import { onTestFinished } from 'vitest';

export interface SlowCrowd {
  /** Connections open now that connected more than `ms` ago: the ones the server keeps. */
  heldLongerThan(ms: number): number;
  /** How long each closed connection lived, in ms, from connect to close. */
  lifetimesMs(): number[];
  stop(): void;
}

const DRIP_MS = 2000;
const REOPEN_MS = 200;

export function slowCrowd(options: {
  host: string;
  port: number;
  /** Source addresses, used in turn. */
  from: readonly string[];
  size: number;
  mode: 'drip' | 'silent';
}): SlowCrowd {
  const sockets = new Map<Socket, number>(); // open, with when each connected
  const lifetimes: number[] = [];
  let stopped = false;
  const open = (localAddress: string) => {
    if (stopped) return;
    const socket = connect({ host: options.host, port: options.port, localAddress });
    let drip: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      sockets.set(socket, performance.now());
      if (options.mode === 'silent') return;
      socket.write('GET /healthz HTTP/1.1\r\n');
      let line = 0;
      drip = setInterval(() => socket.write(`X-Slow-${line++}: 1\r\n`), DRIP_MS);
    });
    socket.on('error', () => {}); // refused, reset: the close below counts it
    socket.resume(); // read the server's 408 and its end, or 'close' waits for a failed write
    socket.on('close', () => {
      clearInterval(drip);
      const connectedAt = sockets.get(socket);
      sockets.delete(socket);
      if (connectedAt !== undefined) lifetimes.push(performance.now() - connectedAt);
      setTimeout(() => open(localAddress), REOPEN_MS).unref();
    });
  };
  for (let i = 0; i < options.size; i++) open(options.from[i % options.from.length] as string);
  const stop = () => {
    stopped = true;
    for (const socket of sockets.keys()) socket.destroy();
  };
  onTestFinished(stop);
  const heldLongerThan = (ms: number) => {
    const since = performance.now() - ms;
    return [...sockets.values()].filter((connectedAt) => connectedAt < since).length;
  };
  return { heldLongerThan, lifetimesMs: () => [...lifetimes], stop };
}
