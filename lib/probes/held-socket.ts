// A connected socket between its connect and its probe. Type-only imports: the scan engine
// loads this without node:net.
import type { Socket } from 'node:net';

// The error a held socket met before its probe took it over (a peer that resets right after
// accept): kept so the probe sees the reset instead of waiting out its deadline.
const earlyErrors = new WeakMap<Socket, string>();

/**
 * Keeps a connected socket safe between its connect and its probe: every error is caught (an
 * 'error' with no listener would end the process) and remembered for the probe.
 */
export function holdSocket(socket: Socket): Socket {
  socket.removeAllListeners();
  socket.on('error', (error: NodeJS.ErrnoException) => {
    if (!earlyErrors.has(socket)) earlyErrors.set(socket, error.code ?? 'UNKNOWN');
  });
  return socket;
}

/** The error a held socket met before its probe took it over, if any. */
export function earlyError(socket: Socket): string | undefined {
  return earlyErrors.get(socket);
}
