import { describe, expect, it } from 'vitest';

import { probe } from '../../lib/scan/job.js';
import { llmHttpServer } from '../helpers/llm-http.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { countFds, settledFdCount } from '../helpers/net.js';

describe.each(['native', 'js'] as const)('HTTP fingerprints, %s engine', (engine) => {
  it('Ollama with its version', async () => {
    const port = await llmHttpServer('ollama', '127.0.0.141');
    const r = await probe('127.0.0.141', port, { engine });
    expect(r).toMatchObject({ service: 'ollama', health: 'serving', http: { product: 'ollama', version: '0.12.3' } });
  });

  it('llama-server with its build, and one still loading its model', async () => {
    const port = await llmHttpServer('llama-server', '127.0.0.142');
    const ready = await probe('127.0.0.142', port, { engine });
    expect(ready).toMatchObject({ service: 'llama-server', health: 'serving', http: { version: 'b6402-a1b2c3d4' } });
    const loadingPort = await llmHttpServer('llama-server-loading', '127.0.0.143');
    const loading = await probe('127.0.0.143', loadingPort, { engine });
    expect(loading).toMatchObject({ service: 'llama-server', health: 'not-serving' });
    expect(loading.reason).toBe('llama-server /health answered 503: Loading model');
  });

  it('vLLM as an OpenAI-compatible server, with version and models', async () => {
    const port = await llmHttpServer('vllm', '127.0.0.144');
    const before = countFds();
    const r = await probe('127.0.0.144', port, { engine });
    expect(r).toMatchObject({
      service: 'openai-compatible',
      health: 'serving',
      http: { product: 'vllm', version: '0.6.3', models: ['Qwen/Qwen2.5-7B-Instruct'] },
    });
    expect(await settledFdCount(before)).toBe(before);
  });

  it('a web server that is no LLM server is unknown, with what each probe saw', async () => {
    const port = await llmHttpServer('plain', '127.0.0.145');
    const r = await probe('127.0.0.145', port, { engine, probeTimeoutMs: 1000 });
    expect(r).toMatchObject({ service: 'unknown', health: 'unknown' });
    expect(r.reason).toContain(
      'http: an HTTP server that is no known LLM server (/api/version 404, /health 404, /v1/models 404)',
    );
  });

  it('finds a ggml-rpc server on a port of its own after HTTP and gRPC do not recognise it', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.146' });
    const r = await probe('127.0.0.146', peer.port, { engine });
    expect(r).toMatchObject({ service: 'ggml-rpc', health: 'serving' });
    expect(peer.dead).toBe(false);
  });
});
