import { describe, expect, it } from 'vitest';

import { chainFor, restSteps, splitChain } from '../../lib/probes/plan.js';
import type { ProbeStep } from '../../lib/probes/types.js';
import { rpcCompatible, verdictFromSteps } from '../../lib/probes/verdict.js';

const ctx = { rpcClientVersion: '5.1.0', grpcService: '', probeTimeoutMs: 2000 };
const step = (s: Partial<ProbeStep>): ProbeStep => ({
  kind: 'ggml-rpc',
  outcome: 'recognized',
  detail: '',
  elapsedMs: 1,
  ...s,
});

describe('llama.cpp compatibility rule', () => {
  it.each([
    [[5, 0, 0], [5, 1, 0], true],
    [[5, 1, 3], [5, 1, 0], true],
    [[5, 2, 0], [5, 1, 0], false],
    [[4, 0, 0], [5, 1, 0], false],
    [[6, 0, 0], [5, 1, 0], false],
  ])('server %j with client %j: %s', (server, client, expected) => {
    expect(rpcCompatible(server, client)).toBe(expected);
  });
});

describe('verdictFromSteps', () => {
  it('ggml-rpc serving, incompatible and busy', () => {
    expect(verdictFromSteps([step({ version: [5, 0, 0], devices: [] })], ctx)).toMatchObject({
      service: 'ggml-rpc',
      health: 'serving',
    });
    expect(verdictFromSteps([step({ version: [3, 6, 1], legacyHello: true })], ctx)).toMatchObject({
      health: 'incompatible',
      rpc: { protocol: '3.6.1', compatible: false, legacyHello: true },
    });
    expect(verdictFromSteps([step({ outcome: 'silent', detail: 'x' })], ctx)).toMatchObject({
      service: 'ggml-rpc',
      health: 'busy',
    });
  });

  it('a ggml-rpc server that answered HELLO and then broke off is identified, health unknown', () => {
    const v = verdictFromSteps(
      [step({ version: [5, 0, 0], outcome: 'protocol-error', detail: 'closed during DEVICE_COUNT' })],
      ctx,
    );
    expect(v).toMatchObject({
      service: 'ggml-rpc',
      health: 'unknown',
      reason: 'ggml-rpc 5.0.0 answered HELLO, then: closed during DEVICE_COUNT',
    });
  });

  it.each([
    [{ grpcStatus: 0, servingStatus: 1 }, 'serving', 'SERVING'],
    [{ grpcStatus: 0, servingStatus: 2 }, 'not-serving', 'NOT_SERVING'],
    [{ grpcStatus: 0, servingStatus: 3 }, 'unknown', 'SERVICE_UNKNOWN'],
    [{ grpcStatus: 0, servingStatus: 0 }, 'unknown', 'UNKNOWN'],
    [{ grpcStatus: 5 }, 'unknown', 'SERVICE_UNKNOWN'],
    [{ grpcStatus: 12 }, 'unknown', 'UNIMPLEMENTED'],
    [{ grpcStatus: 14, grpcMessage: 'going%20away' }, 'unknown', 'ERROR'],
  ])('gRPC %o -> %s %s', (fields, health, status) => {
    const v = verdictFromSteps([step({ kind: 'grpc', ...fields })], ctx);
    expect(v).toMatchObject({ service: 'grpc', health, grpc: { status } });
  });

  it('decodes the percent-encoded grpc-message', () => {
    const v = verdictFromSteps([step({ kind: 'grpc', grpcStatus: 14, grpcMessage: 'going%20away' })], ctx);
    expect(v.reason).toBe('gRPC health check failed with grpc-status 14 (going away)');
  });

  it('names what every probe saw when none recognised the service', () => {
    const v = verdictFromSteps(
      [
        step({ kind: 'http', outcome: 'not-recognized', detail: 'not an HTTP server' }),
        step({ kind: 'grpc', outcome: 'not-recognized', detail: 'closed' }),
      ],
      ctx,
    );
    expect(v).toEqual({
      service: 'unknown',
      health: 'unknown',
      reason: 'no known service answered (http: not an HTTP server; grpc: closed)',
    });
  });

  // redis-server on its own port: the HTTP probe is reset without a byte, the gRPC preface
  // gets "-ERR unknown command", HELLO gets nothing.
  const redisSteps = (grpcReceived: number): ProbeStep[] => [
    step({ kind: 'http', outcome: 'not-recognized', detail: 'not an HTTP server (ECONNRESET)', received: 0 }),
    step({
      kind: 'grpc',
      outcome: 'not-recognized',
      detail: 'not an HTTP/2 server: it answered "-ERR unknown com\u001b[2J"',
      received: grpcReceived,
    }),
    step({
      kind: 'ggml-rpc',
      outcome: 'silent',
      detail: 'accepted the connection and answered neither HELLO nor a newline',
      received: 0,
    }),
  ];

  it('a port that answered an earlier step in another protocol is no busy ggml-rpc server', () => {
    const v = verdictFromSteps(redisSteps(44), ctx);
    expect(v).toEqual({
      service: 'unknown',
      health: 'unknown',
      reason:
        'another service: the grpc probe got an answer that is not ggml-rpc (not an HTTP/2 server: it answered "-ERR unknown com[2J"); ggml-rpc: accepted the connection and answered neither HELLO nor a newline within 2000 ms',
    });
    // A close or a reset without a byte is no such answer: the silence stays a busy guess.
    const closed = redisSteps(0);
    (closed[1] as ProbeStep).detail = 'reset the connection without an HTTP/2 reply';
    expect(verdictFromSteps(closed, ctx)).toMatchObject({ service: 'ggml-rpc', health: 'busy', guess: true });
  });

  it('a ggml-rpc step that got bytes of another protocol counts too', () => {
    const v = verdictFromSteps(
      [
        step({ outcome: 'not-recognized', detail: 'sent "220 smtp", not a ggml-rpc HELLO reply', received: 10 }),
        step({ kind: 'grpc', outcome: 'silent', detail: 'accepted the connection but sent no HTTP/2 reply' }),
      ],
      ctx,
    );
    expect(v.reason).toMatch(/^another service: the ggml-rpc probe got an answer that is not ggml-rpc \(sent "220/);
    expect(v).toMatchObject({ service: 'unknown', health: 'unknown' });
    expect(v.guess).toBeUndefined();
  });
});

describe('probe chains', () => {
  it('auto picks by port', () => {
    expect(chainFor(50052, 'auto')).toEqual(['ggml-rpc', 'grpc']);
    expect(chainFor(11434, 'auto')).toEqual(['http']);
    expect(chainFor(8080, 'auto')).toEqual(['http', 'grpc', 'ggml-rpc']);
    expect(chainFor(8080, false)).toEqual([]);
  });

  it('runs the leading engine probes in the scan pass and the rest after', () => {
    expect(splitChain(['ggml-rpc', 'grpc'])).toEqual({ plan: 3, rest: [] });
    expect(splitChain(['http', 'grpc', 'ggml-rpc'])).toEqual({ plan: 0, rest: ['http', 'grpc', 'ggml-rpc'] });
    expect(restSteps(['http', 'grpc', 'ggml-rpc'])).toEqual(['http', 4]);
    expect(restSteps(['grpc', 'http'])).toEqual([2, 'http']);
  });
});
