// HTTP fingerprints of LLM servers (both engines use this one): Ollama (GET /api/version),
// llama-server (GET /health, then /props for the build), vLLM and other OpenAI-compatible
// servers (GET /v1/models, and vLLM's /version). One keep-alive connection per probe; every
// request and the whole probe share one deadline; bodies are read up to 64 KiB.
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

import { peerText } from '../common/peer-text.js';
import { peerPreview } from './ggml-rpc.js';
import type { Target } from './session.js';
import type { HttpFingerprint, ProbeStep } from './types.js';

const MAX_BODY = 64 * 1024;

interface HttpAnswer {
  status: number;
  json: unknown;
}

class HttpFailure extends Error {
  constructor(
    readonly kind: 'silent' | 'stalled' | 'not-http' | 'connect-failed',
    message: string,
  ) {
    super(message);
  }
}

/** One probe's keep-alive agent, and the sockets it made: what the peer sent on them is counted. */
interface Connection {
  agent: Agent;
  sockets: Set<Socket>;
}

function get(target: Target, path: string, conn: Connection, deadline: number): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const left = deadline - performance.now();
    if (left <= 0) {
      reject(new HttpFailure('silent', `no HTTP response to GET ${path}`));
      return;
    }
    let received = 0;
    let done = false;
    // Every way out goes through here once: the promise settles and the request is gone.
    const settle = (outcome: HttpAnswer | HttpFailure) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (outcome instanceof HttpFailure) {
        req.destroy();
        reject(outcome);
      } else {
        resolve(outcome);
      }
    };
    const req = request({
      host: target.host,
      port: target.port,
      family: target.family,
      path,
      agent: conn.agent,
      headers: { accept: 'application/json', 'user-agent': 'scan-backends' },
    });
    req.on('socket', (socket) => conn.sockets.add(socket));
    const timer = setTimeout(() => {
      settle(
        received === 0
          ? new HttpFailure('silent', `no HTTP response to GET ${path}`)
          : new HttpFailure('stalled', `the response to GET ${path} stopped after ${received} bytes`),
      );
    }, left);
    req.on('error', (error: NodeJS.ErrnoException) => {
      const refused = rawPacket(error);
      if (error.code === 'ECONNREFUSED' || error.code === 'EHOSTUNREACH')
        settle(new HttpFailure('connect-failed', `a new connection for the probe failed: ${error.code}`));
      // Said as the gRPC probe says it: what the peer sent, not what the parser made of it.
      else if (refused)
        settle(new HttpFailure('not-http', `not an HTTP server: it answered "${peerPreview(refused, 16)}"`));
      else settle(new HttpFailure('not-http', `not an HTTP server (${error.code ?? error.message})`));
    });
    let responded = false;
    req.on('close', () => {
      if (!responded) settle(new HttpFailure('not-http', `closed the connection before answering GET ${path}`));
    });
    req.on('response', (res) => {
      responded = true;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > MAX_BODY) {
          settle(new HttpFailure('stalled', `GET ${path}: body over ${MAX_BODY} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          json = undefined;
        }
        settle({ status: res.statusCode ?? 0, json });
      });
      // A body cut short (Content-Length promised more, then the peer closed) ends here.
      const cut = () =>
        settle(new HttpFailure('stalled', `the response to GET ${path} ended after ${received} bytes of its body`));
      res.on('error', cut);
      res.on('close', () => {
        if (!res.complete) cut();
      });
    });
    req.end();
  });
}

/** The bytes Node's HTTP parser refused (it attaches them to a parse error). */
function rawPacket(error: Error): Buffer | undefined {
  const raw = (error as { rawPacket?: unknown }).rawPacket;
  return Buffer.isBuffer(raw) && raw.length > 0 ? raw : undefined;
}

function field(json: unknown, ...path: string[]): unknown {
  let at: unknown = json;
  for (const key of path) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

/** A string field of a peer's JSON, made safe to print and bounded. */
function text(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const safe = peerText(value, 80);
  return safe.length > 0 ? safe : undefined;
}

async function fingerprint(
  target: Target,
  conn: Connection,
  deadline: number,
  onlyOllama: boolean,
): Promise<HttpFingerprint | string> {
  const seen: string[] = [];
  const ollama = await get(target, '/api/version', conn, deadline);
  const ollamaVersion = text(field(ollama.json, 'version'));
  if (ollama.status === 200 && ollamaVersion) return { product: 'ollama', version: ollamaVersion, status: 200 };
  seen.push(`/api/version ${ollama.status}`);
  if (onlyOllama) return `an HTTP server, not Ollama (${seen.join(', ')})`;

  const health = await get(target, '/health', conn, deadline);
  const healthStatus = text(field(health.json, 'status'));
  const healthError = text(field(health.json, 'error', 'message'));
  if ((health.status === 200 && healthStatus) || (health.status === 503 && healthError)) {
    const props = health.status === 200 ? await get(target, '/props', conn, deadline) : undefined;
    const fp: HttpFingerprint = { product: 'llama-server', status: health.status };
    const build = text(field(props?.json, 'build_info'));
    if (build) fp.version = build;
    if (healthError) fp.message = healthError;
    return fp;
  }
  seen.push(`/health ${health.status}`);

  const models = await get(target, '/v1/models', conn, deadline);
  const data = field(models.json, 'data');
  if (models.status === 200 && field(models.json, 'object') === 'list' && Array.isArray(data)) {
    const ids = data.map((m) => text(field(m, 'id'))).filter((id): id is string => id !== undefined);
    const vllm = data.some((m) => field(m, 'owned_by') === 'vllm');
    const fp: HttpFingerprint = { product: vllm ? 'vllm' : 'openai-compatible', status: 200, models: ids.slice(0, 16) };
    if (vllm) {
      const version = text(field((await get(target, '/version', conn, deadline)).json, 'version'));
      if (version) fp.version = version;
    }
    return fp;
  }
  seen.push(`/v1/models ${models.status}`);
  return `an HTTP server that is no known LLM server (${seen.join(', ')})`;
}

/** The HTTP probe: a fingerprint, or why there is none, within `timeoutMs`. */
export async function httpStep(
  target: Target,
  timeoutMs: number,
  onlyOllama = false,
  signal?: AbortSignal,
): Promise<ProbeStep> {
  const started = performance.now();
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const conn: Connection = { agent, sockets: new Set() };
  const onAbort = () => agent.destroy();
  signal?.addEventListener('abort', onAbort, { once: true });
  const step: ProbeStep = { kind: 'http', outcome: 'not-recognized', detail: '', elapsedMs: 0 };
  try {
    const result = await fingerprint(target, conn, started + timeoutMs, onlyOllama);
    if (typeof result === 'string') step.detail = result;
    else {
      step.outcome = 'recognized';
      step.http = result;
    }
  } catch (error) {
    const failure = error instanceof HttpFailure ? error : new HttpFailure('not-http', String(error));
    step.outcome = failure.kind === 'not-http' ? 'not-recognized' : failure.kind;
    step.detail = failure.message;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    agent.destroy();
  }
  step.received = [...conn.sockets].reduce((sum, socket) => sum + socket.bytesRead, 0);
  step.elapsedMs = performance.now() - started;
  return step;
}
