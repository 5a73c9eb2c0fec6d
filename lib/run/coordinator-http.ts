// What the supervisor asks the coordinator over HTTP, as llama-server answers: GET /health
// (200 once the model is loaded, 503 while loading), GET /slots (an array of slots, each with
// `is_processing`), GET /metrics (`llamacpp:requests_processing`, with --metrics). Every
// request has a deadline and a byte cap: a coordinator's answer is read as a peer's is.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** An answer longer than this is cut off and not believed. */
const MAX_BODY_BYTES = 256 * 1024;
const DEFAULT_TIMEOUT_MS = 2000;

/** Where llama-server listens unless told: --host 127.0.0.1, --port 8080. */
const LLAMA_SERVER_HOST = '127.0.0.1';
const LLAMA_SERVER_PORT = 8080;

/** The value of `--name V` or `--name=V` in argv (the last one wins, as llama.cpp's parser does). */
function flagValue(argv: readonly string[], names: readonly string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    for (const name of names) {
      if (arg === name && i + 1 < argv.length) value = argv[i + 1];
      else if (arg.startsWith(`${name}=`)) value = arg.slice(name.length + 1);
    }
  }
  return value;
}

/**
 * The health URL of a coordinator started with `argv`, from llama-server's --host/--port: a
 * wildcard or missing host is asked on loopback.
 */
export function healthUrlFor(argv: readonly string[]): string {
  let host = flagValue(argv, ['--host']) ?? LLAMA_SERVER_HOST;
  if (host === '0.0.0.0' || host === '' || host === '::') host = LLAMA_SERVER_HOST;
  const portText = flagValue(argv, ['--port']);
  const port = portText !== undefined && /^\d{1,5}$/.test(portText) ? Number(portText) : LLAMA_SERVER_PORT;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return `http://${shownHost}:${port}/health`;
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** GET `url`: its status and body, within `timeoutMs` and MAX_BODY_BYTES; rejects otherwise. */
export function getBounded(url: string, timeoutMs = DEFAULT_TIMEOUT_MS, signal?: AbortSignal): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(url, { method: 'GET', timeout: timeoutMs, signal, headers: { accept: 'application/json' } });
    // The whole answer within the deadline, not just each read: a slow drip is not an answer.
    const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error) => {
      clearTimeout(deadline);
      reject(error);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > MAX_BODY_BYTES) {
          req.destroy(new Error(`an answer over ${MAX_BODY_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        clearTimeout(deadline);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', () => {});
    });
    req.end();
  });
}

/** 'ready' (200), 'loading' (any other answer) or 'down' (no answer). */
export type Health = 'ready' | 'loading' | 'down';

export async function coordinatorHealth(url: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Health> {
  try {
    return (await getBounded(url, timeoutMs)).status === 200 ? 'ready' : 'loading';
  } catch {
    return 'down';
  }
}

/** From a /slots answer: whether every slot is idle; undefined when it is not such an answer. */
export function idleFromSlots(body: string): boolean | undefined {
  let slots: unknown;
  try {
    slots = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!Array.isArray(slots) || slots.length === 0) return undefined;
  let idle = true;
  for (const slot of slots) {
    const processing = (slot as { is_processing?: unknown } | null)?.is_processing;
    if (typeof processing !== 'boolean') return undefined;
    if (processing) idle = false;
  }
  return idle;
}

const REQUESTS_PROCESSING = /^llamacpp:requests_processing(?:\{[^}\n]*\})?\s+([0-9.eE+-]+)\s*$/m;

/** From a /metrics answer: whether no request is being processed; undefined when it does not say. */
export function idleFromMetrics(body: string): boolean | undefined {
  const match = REQUESTS_PROCESSING.exec(body);
  if (!match) return undefined;
  const value = Number(match[1]);
  return Number.isFinite(value) ? value === 0 : undefined;
}

/**
 * Whether the coordinator behind `healthUrl` is idle: its /slots, else its /metrics; undefined
 * when neither tells (slots disabled, no --metrics, not llama-server).
 */
export async function coordinatorIdle(healthUrl: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<boolean | undefined> {
  const base = new URL(healthUrl);
  for (const [path, read] of [
    ['/slots', idleFromSlots],
    ['/metrics', idleFromMetrics],
  ] as const) {
    try {
      const answer = await getBounded(new URL(path, base).href, timeoutMs);
      if (answer.status !== 200) continue;
      const idle = read(answer.body);
      if (idle !== undefined) return idle;
    } catch {
      // not answered: the next one, or cannot tell
    }
  }
  return undefined;
}
