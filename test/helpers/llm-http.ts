// Small real HTTP servers that answer as Ollama, llama-server and vLLM do (their documented
// endpoints and response shapes), and one that is no LLM server at all.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

import { onTestFinished } from 'vitest';

export type LlmServerKind =
  'ollama' | 'llama-server' | 'llama-server-metrics' | 'llama-server-loading' | 'vllm' | 'plain';

type Routes = Record<string, [status: number, body: unknown]>;

const ROUTES: Record<LlmServerKind, Routes> = {
  ollama: {
    '/': [200, 'Ollama is running'],
    '/api/version': [200, { version: '0.12.3' }],
    '/api/tags': [200, { models: [] }],
  },
  'llama-server': {
    '/health': [200, { status: 'ok' }],
    '/props': [200, { build_info: 'b6402-a1b2c3d4', total_slots: 4, model_path: '/models/qwen2.5-7b.gguf' }],
    '/v1/models': [200, { object: 'list', data: [{ id: 'qwen2.5-7b.gguf', object: 'model', owned_by: 'llamacpp' }] }],
  },
  // llama-server started with --metrics: Prometheus text at /metrics.
  'llama-server-metrics': {
    '/health': [200, { status: 'ok' }],
    '/props': [200, { build_info: 'b6402-a1b2c3d4', total_slots: 4, model_path: '/models/qwen2.5-7b.gguf' }],
    '/v1/models': [200, { object: 'list', data: [{ id: 'qwen2.5-7b.gguf', object: 'model', owned_by: 'llamacpp' }] }],
    '/metrics': [
      200,
      '# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total 42\n',
    ],
  },
  'llama-server-loading': {
    '/health': [503, { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } }],
  },
  vllm: {
    '/health': [200, ''],
    '/version': [200, { version: '0.6.3' }],
    '/v1/models': [
      200,
      {
        object: 'list',
        data: [{ id: 'Qwen/Qwen2.5-7B-Instruct', object: 'model', owned_by: 'vllm', max_model_len: 32768 }],
      },
    ],
  },
  plain: {
    '/': [200, '<html>hello</html>'],
  },
};

/** Starts one on `host` (port 0), closed after the test; returns its port. */
export async function llmHttpServer(kind: LlmServerKind, host: string): Promise<number> {
  const routes = ROUTES[kind];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const route = routes[req.url ?? ''];
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
      return;
    }
    const [status, body] = route;
    if (typeof body === 'string') res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
    else res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return (server.address() as { port: number }).port;
}
