// The gRPC health probe for the JS engine: grpc.health.v1.Health/Check over h2c through
// Node's own HTTP/2 client (nghttp2), an independent implementation the native one is
// compared with. Classified like the native probe: failing before the server's SETTINGS is
// "not HTTP/2", failing after it is a protocol error.
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Duplex } from 'node:stream';

import { peerPreview } from './ggml-rpc.js';
import { earlyError } from './held-socket.js';
import { connectSocket, PROBE_READ_BUDGET, PROBE_WRITE_BACKLOG, type Target } from './session.js';
import type { ProbeStep, StepOutcome } from './types.js';

const MAX_MESSAGE = 4096;

function healthRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  // HealthCheckRequest { string service = 1; }: tag 0x0a, varint length, bytes.
  const lengthVarint: number[] = [];
  for (let n = name.length; ; n >>= 7) {
    if (n < 0x80) {
      lengthVarint.push(n);
      break;
    }
    lengthVarint.push((n & 0x7f) | 0x80);
  }
  const body = service ? Buffer.concat([Buffer.from([0x0a, ...lengthVarint]), name]) : Buffer.alloc(0);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

/** The ServingStatus in a length-prefixed HealthCheckResponse, or an error string. */
export function parseHealthResponse(message: Buffer): number | string {
  if (message.length < 5) return 'gRPC message shorter than its 5-byte prefix';
  if (message[0] !== 0) return 'compressed gRPC message';
  const length = message.readUInt32BE(1);
  if (length !== message.length - 5) return `gRPC message prefix says ${length} bytes, ${message.length - 5} arrived`;
  let at = 5;
  let status = 0;
  const varint = (): number | null => {
    let value = 0;
    for (let shift = 0; shift < 35 && at < message.length; shift += 7) {
      const b = message[at++] as number;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
    return null;
  };
  while (at < message.length) {
    const key = varint();
    if (key === null) return 'HealthCheckResponse is not valid protobuf';
    const wire = key & 7;
    if (wire === 0) {
      const value = varint();
      if (value === null || (key >> 3 === 1 && value > 1000)) return 'HealthCheckResponse is not valid protobuf';
      if (key >> 3 === 1) status = value;
    } else if (wire === 1 || wire === 5) {
      at += wire === 1 ? 8 : 4;
    } else if (wire === 2) {
      const n = varint();
      if (n === null || n > message.length - at) return 'HealthCheckResponse is not valid protobuf';
      at += n;
    } else {
      return 'HealthCheckResponse is not valid protobuf';
    }
    if (at > message.length) return 'HealthCheckResponse is not valid protobuf';
  }
  return status;
}

/**
 * The socket as a stream that counts what crosses it. nghttp2 reads a net.Socket inside C++,
 * out of reach of a byte count; through this stream every chunk passes here first, so a peer
 * that floods SETTINGS, PINGs or CONTINUATION frames meets the probe's read budget.
 */
function meteredStream(socket: Socket, onRead: (chunk: Buffer, total: number) => boolean): Duplex {
  let total = 0;
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (socket.destroyed) return callback();
      socket.write(chunk);
      callback();
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(error, callback) {
      socket.destroy();
      callback(error);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    total += chunk.length;
    if (!onRead(chunk, total)) return;
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on('end', () => stream.push(null));
  socket.on('error', (error) => stream.destroy(error));
  socket.on('close', () => stream.destroy());
  return stream;
}

/** Runs the health check within `timeoutMs`, on `socket` when given, else a new connection. */
export async function grpcHealthStep(
  target: Target,
  service: string,
  timeoutMs: number,
  given?: Socket,
  signal?: AbortSignal,
): Promise<ProbeStep> {
  const started = performance.now();
  const step: ProbeStep = { kind: 'grpc', outcome: 'silent', detail: '', elapsedMs: 0 };
  const socket = given ?? (await connectSocket(target, timeoutMs));
  if (typeof socket === 'string') {
    return {
      ...step,
      outcome: 'connect-failed',
      detail: `a new connection for the probe failed: ${socket}`,
      elapsedMs: performance.now() - started,
    };
  }
  const authority = target.family === 6 ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  return new Promise<ProbeStep>((resolve) => {
    let settled = false;
    let sawSettings = false;
    let answered = false;
    let received = 0;
    let firstBytes = Buffer.alloc(0); // what a peer of another protocol said, for the reason
    let message = Buffer.alloc(0);
    const early = earlyError(socket);
    socket.removeAllListeners();
    socket.on('error', () => {}); // reported through the stream below
    const stream = meteredStream(socket, (chunk, total) => {
      received = total;
      if (firstBytes.length < 16) firstBytes = Buffer.concat([firstBytes, chunk.subarray(0, 16 - firstBytes.length)]);
      if (total <= PROBE_READ_BUDGET && socket.writableLength <= PROBE_WRITE_BACKLOG) return true;
      if (total > PROBE_READ_BUDGET)
        finish('protocol-error', `sent more than ${PROBE_READ_BUDGET} bytes, a probe's read budget`);
      else finish('protocol-error', `does not read what the probe sends (${socket.writableLength} bytes queued)`);
      return false;
    });
    const session = http2.connect(`http://${authority}`, {
      createConnection: () => stream,
      settings: { enablePush: false },
    });
    const onAbort = () => finish('silent', 'aborted');
    const finish = (outcome: StepOutcome, detail = '') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      step.outcome = outcome;
      step.detail = detail;
      step.elapsedMs = performance.now() - started;
      step.received = received;
      session.removeAllListeners();
      session.on('error', () => {});
      // An unanswered request is aborted (RST), as the native probe does. The socket goes with
      // the session, whatever the peer keeps sending.
      if (outcome === 'recognized' || outcome === 'not-recognized') socket.destroy();
      else socket.resetAndDestroy();
      session.destroy();
      resolve(step);
    };
    const fail = (what: string) => {
      if (sawSettings) finish('protocol-error', what);
      else if (received === 0) finish('not-recognized', 'closed the connection without an HTTP/2 reply');
      // Said as the native probe says it: what the peer sent, not what nghttp2 made of it.
      else finish('not-recognized', `not an HTTP/2 server: it answered "${peerPreview(firstBytes, 16)}"`);
    };
    const timer = setTimeout(
      () => {
        if (received === 0) finish('silent', 'accepted the connection but sent no HTTP/2 reply');
        else finish('stalled', `the response stopped after ${received} bytes`);
      },
      Math.max(0, timeoutMs - (performance.now() - started)),
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    session.on('remoteSettings', () => (sawSettings = true));
    session.on('error', (error: NodeJS.ErrnoException) =>
      fail(error.code ? `${error.code}: ${error.message}` : error.message),
    );
    session.on('goaway', (code: number, lastStreamId: number) => {
      if (code !== 0 || lastStreamId < 1) fail(`server sent GOAWAY (error code ${code}) before answering`);
    });
    session.on('close', () => fail('closed the connection before the response ended'));

    const request = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': 'scan-backends',
    });
    request.on('error', (error: NodeJS.ErrnoException) =>
      fail(error.code ? `${error.code}: ${error.message}` : error.message),
    );
    request.on('response', (headers) => {
      answered = true;
      step.httpStatus = Number(headers[':status']);
      const contentType = String(headers['content-type'] ?? '');
      if (step.httpStatus !== 200 || !contentType.startsWith('application/grpc')) {
        finish(
          'not-recognized',
          `an HTTP/2 server, not gRPC (:status ${step.httpStatus}, content-type "${contentType}")`,
        );
        return;
      }
      if (headers['grpc-status'] !== undefined) step.grpcStatus = Number(headers['grpc-status']);
      if (headers['grpc-message'] !== undefined) step.grpcMessage = String(headers['grpc-message']).slice(0, 256);
    });
    request.on('data', (chunk: Buffer) => {
      if (message.length + chunk.length > MAX_MESSAGE) fail('gRPC response larger than a health reply');
      else message = Buffer.concat([message, chunk]);
    });
    request.on('trailers', (trailers) => {
      if (trailers['grpc-status'] !== undefined) step.grpcStatus = Number(trailers['grpc-status']);
      if (trailers['grpc-message'] !== undefined) step.grpcMessage = String(trailers['grpc-message']).slice(0, 256);
    });
    request.on('close', () => {
      if (settled) return;
      if (!answered) return fail(`the stream closed without a response (code ${request.rstCode})`);
      if (request.rstCode !== 0 && request.rstCode !== undefined && step.grpcStatus === undefined) {
        return fail(`server reset the stream (error code ${request.rstCode})`);
      }
      if (step.grpcStatus === undefined) return fail('the stream ended without grpc-status');
      if (!Number.isInteger(step.grpcStatus)) return fail('grpc-status is not a number');
      if (step.grpcStatus !== 0) return finish('recognized');
      const status = parseHealthResponse(message);
      if (typeof status === 'string') return fail(status);
      step.servingStatus = status;
      finish('recognized');
    });
    request.end(healthRequest(service));
    if (socket.destroyed || early !== undefined)
      fail(`the connection was ${early === 'ECONNRESET' ? 'reset' : 'closed'} at once`);
  });
}
