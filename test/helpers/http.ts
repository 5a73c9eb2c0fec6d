// HTTP as a test sees it: one request with its status, headers and body; a raw one written
// byte for byte; an SSE client that collects what a stream sends.
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export function get(
  url: string,
  options: {
    headers?: Record<string, string>;
    method?: string;
    body?: string;
    /** The source address, e.g. one of 127.0.0.0/8. */
    localAddress?: string;
    timeoutMs?: number;
  } = {},
): Promise<Answer> {
  const { method = 'GET', headers, localAddress, timeoutMs = 5000 } = options;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, localAddress, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface SseClient {
  status: number;
  /** Everything received so far. */
  text: () => string;
  /** The `data:` payloads of the events received, parsed. */
  events: () => { id?: string; event?: string; data: unknown }[];
  ended: Promise<void>;
  close: () => void;
}

export function sse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    let text = '';
    let endedResolve: () => void = () => {};
    const ended = new Promise<void>((r) => (endedResolve = r));
    const req = request(url, { headers: { Accept: 'text/event-stream', ...headers } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => endedResolve());
      res.on('close', () => endedResolve());
      resolve({
        status: res.statusCode ?? 0,
        text: () => text,
        events: () =>
          text
            .split('\n\n')
            .filter((block) => /^data: /m.test(block))
            .map((block) => {
              const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(block)?.[1];
              return { id: field('id'), event: field('event'), data: JSON.parse(field('data') ?? 'null') };
            }),
        ended,
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Sends `head` byte for byte (a Host client libraries will not send, an absolute URL, no Host
 * at all) to host:port and returns what comes back until the server closes, or `timeoutMs`.
 */
export function rawRequest(host: string, port: number, head: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect({ host, port }, () => socket.write(head));
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}
