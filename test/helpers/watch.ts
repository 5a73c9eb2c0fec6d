// A `scan-backends watch` process under test: its stdout lines parsed as they come (events
// and log lines), waits bounded in time, and a stop that checks it ended.
import { onTestFinished } from 'vitest';

import type { WatchEvent } from '../../lib/watch/types.js';
import { startCli } from './cli.js';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface WatchProcess {
  pid: number;
  events: WatchEvent[];
  logs: LogLine[];
  stderr: () => string;
  /** Resolves with the first line (event or log) that matches, or rejects after `timeoutMs`. */
  waitFor<T extends WatchEvent | LogLine>(what: string, match: (line: T) => boolean, timeoutMs?: number): Promise<T>;
  signal(name: NodeJS.Signals): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `scan-backends watch` (or `serve`, which takes the same options and more); with `stdout` (a
 * descriptor the test opened) its lines go there and `events`/`logs` stay empty.
 */
export function startWatch(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  command: 'watch' | 'serve' | 'run' = 'watch',
  stdout?: number,
): WatchProcess {
  const { child } = startCli([command, '--format', 'ndjson', ...args], { env, stdout });
  const events: WatchEvent[] = [];
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  let buffered = '';
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if ('schema' in parsed) events.push(parsed as unknown as WatchEvent);
      else logs.push(parsed as LogLine);
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return {
    pid: child.pid as number,
    events,
    logs,
    stderr: () => stderr,
    waitFor<T extends WatchEvent | LogLine>(what: string, match: (line: T) => boolean, timeoutMs = 10_000) {
      return new Promise<T>((resolve, reject) => {
        const look = () => {
          const found = ([...events, ...logs] as T[]).find(match);
          if (!found) return false;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
          return true;
        };
        const check = () => void look();
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(events.map((e) => [e.id, e.type, e.backend ? `${e.backend.host}:${e.backend.port}` : '']))}; logs: ${logs.map((l) => l.msg).join(' | ')}; stderr: ${stderr}`,
            ),
          );
        }, timeoutMs);
        if (!look()) waiters.add(check);
      });
    },
    signal: (name) => child.kill(name),
    exited,
  };
}

export const isEvent =
  (type: WatchEvent['type'], host: string, after = 0) =>
  (line: WatchEvent | LogLine): boolean => {
    if (!('schema' in line)) return false;
    const event = line as WatchEvent;
    return event.type === type && event.backend.host === host && event.id > after;
  };

export const isLog =
  (msg: string | RegExp) =>
  (line: WatchEvent | LogLine): boolean =>
    'msg' in line && (typeof msg === 'string' ? line.msg === msg : msg.test(line.msg));
