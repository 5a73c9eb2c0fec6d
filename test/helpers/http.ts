// HTTP as a test sees it: one request with its status, headers and body; an SSE client that
// collects what a stream sends.
import { request, type IncomingHttpHeaders } from 'node:http';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export function get(
  url: string,
  options: { headers?: Record<string, string>; method?: string; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 5 s`)));
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
