// The ggml-rpc probe for the JS engine, the twin of native/core/probe_ggml_rpc.cc: HELLO with
// 24 bytes of connection caps (4.x+), the empty HELLO (1.x-3.x) on a fresh connection after a
// silent close, then DEVICE_COUNT (3.x+) and GET_DEVICE_MEMORY per device.
// Wire facts: shared/docs/ggml-rpc-wire.md.
import type { ProbeSession, SessionAction } from './session.js';
import type { ProbeStep, StepOutcome } from './types.js';

const CMD_GET_DEVICE_MEMORY = 11;
const CMD_HELLO = 14;
const CMD_DEVICE_COUNT = 15;
const HEADER_SIZE = 8;
const CONN_CAPS_SIZE = 24;
const MAX_DEVICES = 256;
const NEWEST_KNOWN_MAJOR = 5;

type Stage = 'hello-caps' | 'hello-legacy' | 'device-count' | 'device-memory' | 'done';

const EXPECTED: Record<Exclude<Stage, 'done'>, number> = {
  'hello-caps': 28, // major, minor, patch, pad, conn_caps[24]
  'hello-legacy': 3,
  'device-count': 4,
  'device-memory': 16, // u64 free, u64 total
};

const STAGE_NAME: Record<Stage, string> = {
  'hello-caps': 'HELLO',
  'hello-legacy': 'the 1.x-3.x HELLO',
  'device-count': 'DEVICE_COUNT',
  'device-memory': 'GET_DEVICE_MEMORY',
  done: 'the end',
};

function request(cmd: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header[0] = cmd;
  header.writeBigUInt64LE(BigInt(payload.length), 1);
  return Buffer.concat([header, payload]);
}

function deviceIndex(index: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(index);
  return b;
}

export class GgmlRpcSession implements ProbeSession {
  readonly step: ProbeStep = { kind: 'ggml-rpc', outcome: 'silent', detail: '', elapsedMs: 0 };
  #stage: Stage = 'hello-caps';
  #reply = Buffer.alloc(0);
  #pending = false;
  #deviceCount = 0;
  #deviceIndex = 0;

  requestPending(): boolean {
    return this.#pending;
  }

  #send(cmd: number, payload?: Buffer): Buffer {
    this.#reply = Buffer.alloc(0);
    this.#pending = true;
    return request(cmd, payload);
  }

  #finish(outcome: StepOutcome, detail: string): { action: SessionAction } {
    this.#stage = 'done';
    this.step.outcome = outcome;
    this.step.detail = detail;
    return { action: 'done' };
  }

  onConnected(): Buffer {
    // conn_caps all zero: a TCP-only client.
    return this.#send(CMD_HELLO, this.#stage === 'hello-caps' ? Buffer.alloc(CONN_CAPS_SIZE) : undefined);
  }

  onData(chunk: Buffer): { action: SessionAction; out?: Buffer } {
    if (this.#stage === 'done') return { action: 'done' };
    if (!this.#pending)
      return this.#finish('protocol-error', `${chunk.length} bytes arrived with no request outstanding`);
    const expected = EXPECTED[this.#stage];
    // The reply never exceeds header + expected; anything longer is judged without buffering.
    const room = HEADER_SIZE + expected - this.#reply.length;
    this.#reply = Buffer.concat([this.#reply, chunk.subarray(0, room)]);
    if (this.#reply.length >= HEADER_SIZE) {
      const declared = this.#reply.readBigUInt64LE(0);
      if (declared !== BigInt(expected)) {
        const hello = this.#stage === 'hello-caps' || this.#stage === 'hello-legacy';
        return this.#finish(
          hello ? 'not-recognized' : 'protocol-error',
          `${STAGE_NAME[this.#stage]} reply declares ${declared} bytes where ggml-rpc sends ${expected}`,
        );
      }
    }
    if (chunk.length > room) {
      return this.#finish('protocol-error', `${chunk.length - room} bytes beyond the ${STAGE_NAME[this.#stage]} reply`);
    }
    if (this.#reply.length < HEADER_SIZE + expected) return { action: 'continue' };
    this.#pending = false;
    return this.#onReply(this.#reply.subarray(HEADER_SIZE));
  }

  #onReply(body: Buffer): { action: SessionAction; out?: Buffer } {
    switch (this.#stage) {
      case 'hello-caps':
      case 'hello-legacy': {
        this.step.version = [body[0] ?? 0, body[1] ?? 0, body[2] ?? 0];
        this.step.legacyHello = this.#stage === 'hello-legacy';
        this.step.devices = [];
        const major = this.step.version[0];
        if (major === 0 || major > NEWEST_KNOWN_MAJOR) {
          return this.#finish(
            'recognized',
            `protocol ${this.step.version.join('.')} is outside the majors this probe knows; devices not queried`,
          );
        }
        if (major >= 3) {
          this.#stage = 'device-count';
          return { action: 'continue', out: this.#send(CMD_DEVICE_COUNT) };
        }
        // 1.x/2.x: one device, and GET_DEVICE_MEMORY takes no index.
        this.#deviceCount = 1;
        this.#deviceIndex = 0;
        this.#stage = 'device-memory';
        return { action: 'continue', out: this.#send(CMD_GET_DEVICE_MEMORY) };
      }
      case 'device-count': {
        this.#deviceCount = body.readUInt32LE(0);
        if (this.#deviceCount > MAX_DEVICES) {
          return this.#finish(
            'protocol-error',
            `DEVICE_COUNT says ${this.#deviceCount} devices, more than any server has`,
          );
        }
        if (this.#deviceCount === 0) return this.#finish('recognized', '');
        this.#deviceIndex = 0;
        this.#stage = 'device-memory';
        return { action: 'continue', out: this.#send(CMD_GET_DEVICE_MEMORY, deviceIndex(0)) };
      }
      case 'device-memory': {
        this.step.devices?.push({
          index: this.#deviceIndex,
          freeBytes: Number(body.readBigUInt64LE(0)),
          totalBytes: Number(body.readBigUInt64LE(8)),
        });
        if (++this.#deviceIndex >= this.#deviceCount) return this.#finish('recognized', '');
        return { action: 'continue', out: this.#send(CMD_GET_DEVICE_MEMORY, deviceIndex(this.#deviceIndex)) };
      }
      case 'done':
        return { action: 'done' };
    }
  }

  onClosed(reset: boolean): SessionAction {
    if (this.#stage === 'done') return 'done';
    this.#pending = false; // the connection is gone: nothing is left to abort
    const how = reset ? 'reset' : 'closed';
    if (this.#reply.length === 0 && this.#stage === 'hello-caps') {
      // A 1.x-3.x server drops the 24-byte HELLO without a byte: ask again, the old way.
      this.#stage = 'hello-legacy';
      return 'reconnect';
    }
    if (this.#reply.length === 0 && this.#stage === 'hello-legacy') {
      return this.#finish(
        'not-recognized',
        `${how} the connection at both HELLO generations without a byte (another service, or a ggml-rpc server older than protocol 1.0)`,
      ).action;
    }
    const expected = HEADER_SIZE + EXPECTED[this.#stage];
    return this.#finish(
      'protocol-error',
      `${how} the connection during ${STAGE_NAME[this.#stage]} after ${this.#reply.length} of ${expected} reply bytes`,
    ).action;
  }

  onTimeout(): void {
    if (this.#stage === 'done') return;
    const hello = this.#stage === 'hello-caps' || this.#stage === 'hello-legacy';
    if (this.#reply.length === 0 && hello) {
      this.#finish('silent', 'accepted the connection but sent no HELLO reply');
    } else {
      const expected = HEADER_SIZE + EXPECTED[this.#stage];
      this.#finish(
        'stalled',
        `${this.#reply.length} of ${expected} bytes of the ${STAGE_NAME[this.#stage]} reply arrived`,
      );
    }
  }
}
