// systemd's notify socket, played by python3: every datagram a daemon sends becomes one line
// of `received()` (its repr), so a test reads READY=1, WATCHDOG=1, STOPPING=1 in order.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

import { eventually } from './net.js';

export async function notifyReceiver(dir: string): Promise<{ socket: string; received: () => string }> {
  const socket = join(dir, 'notify.sock');
  const receiver = spawn(
    'python3',
    [
      '-c',
      'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound",flush=True)\nwhile True:\n  print(repr(s.recv(4096).decode()),flush=True)',
      socket,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  onTestFinished(() => void receiver.kill('SIGKILL'));
  let received = '';
  receiver.stdout.setEncoding('utf8').on('data', (d: string) => (received += d));
  if (!(await eventually(() => received.startsWith('bound'), 5000)))
    throw new Error('the notify receiver did not bind');
  return { socket, received: () => received };
}
