// Connection limits that slow and idle clients cannot turn against everyone else (issue 18:
// 600 connections dripping their headers held all 512 places, before any token was checked).
// One client (an IPv4 address, an IPv6 /64) holds at most `perClient` connections; the next
// are closed at once. At `total`, a new connection takes the place of the oldest one that is
// not in a request (idle, or still sending its headers), so a crowd of slow connections only
// ever replaces itself; connections in a request, event streams included, are never taken.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

import { formatAddress, parseAddress } from '../common/addresses.js';

export type ClosedBecause = 'per-client' | 'replaced' | 'full';

/** Who a connection counts against: its IPv4 address (also when IPv4-mapped), or its IPv6 /64. */
export function clientOf(remoteAddress: string): string {
  const address = parseAddress(remoteAddress);
  if (!address) return remoteAddress;
  if (address.family === 4) return formatAddress(address);
  if (address.value >> 32n === 0xffffn) return formatAddress({ family: 4, value: address.value & 0xffffffffn });
  return `${formatAddress({ family: 6, value: (address.value >> 64n) << 64n })}/64`;
}

export function guardConnections(
  server: Server,
  limits: { total: number; perClient: number },
  onClose: (because: ClosedBecause) => void,
): void {
  const connections = new Map<Socket, { client: string; requests: number }>();
  const perClient = new Map<string, number>();
  // Connections not in a request, oldest first (a Set keeps insertion order).
  const waiting = new Set<Socket>();
  const forget = (socket: Socket) => {
    const state = connections.get(socket);
    if (!state) return;
    connections.delete(socket);
    waiting.delete(socket);
    const left = (perClient.get(state.client) ?? 1) - 1;
    if (left === 0) perClient.delete(state.client);
    else perClient.set(state.client, left);
  };
  const drop = (socket: Socket, because: ClosedBecause) => {
    onClose(because);
    forget(socket);
    socket.destroy();
  };

  server.on('connection', (socket: Socket) => {
    if (socket.remoteAddress === undefined) {
      socket.destroy(); // gone before it was seen
      return;
    }
    const client = clientOf(socket.remoteAddress);
    if ((perClient.get(client) ?? 0) >= limits.perClient) return drop(socket, 'per-client');
    if (connections.size >= limits.total) {
      const oldest = waiting.values().next().value;
      if (oldest === undefined) return drop(socket, 'full');
      drop(oldest, 'replaced');
    }
    connections.set(socket, { client, requests: 0 });
    perClient.set(client, (perClient.get(client) ?? 0) + 1);
    waiting.add(socket);
    socket.once('close', () => forget(socket));
  });

  server.on('request', (req, res) => {
    const socket = req.socket;
    const state = connections.get(socket);
    if (!state) return;
    state.requests += 1;
    waiting.delete(socket);
    res.once('close', () => {
      state.requests -= 1;
      // Idle again: now the youngest of the waiting.
      if (state.requests === 0 && connections.has(socket)) waiting.add(socket);
    });
  });
}
