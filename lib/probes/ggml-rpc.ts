// The ggml-rpc probe for the JS engine, the twin of native/core/probe_ggml_rpc.cc: HELLO with
// 24 bytes of connection caps (4.x+), the empty HELLO (1.x-3.x) on a fresh connection after a
// silent close, then DEVICE_COUNT (3.x+) and GET_DEVICE_MEMORY per device.
// Wire facts: docs/ggml-rpc-wire.md.
import type { ProbeSession, SessionAction } from './session.js';
import type { ProbeStep, StepOutcome } from './types.js';

/**
 * The commands the probe sends: llama.cpp's rpc_cmd ids. The loader compares them with the
 * addon's (SB_GGML_RPC_COMMAND_MAP in native/core/probe_ggml_rpc.hh).
 */
export const GGML_RPC_COMMANDS = { GET_DEVICE_MEMORY: 11, HELLO: 14, DEVICE_COUNT: 15 } as const;
const HEADER_SIZE = 8;
const CONN_CAPS_SIZE = 24;
const MAX_DEVICES = 256;
/** The newest ggml-rpc protocol the probe knows (upstream ggml-rpc.h, docs/ggml-rpc-wire.md). */
export const NEWEST_RPC_PROTOCOL = '7.0.1';
/**
 * DEVICE_COUNT = 15 and GET_DEVICE_MEMORY = 11 hold from 3.0.0 through this major; a newer
 * server is named, not queried (the native twin's kNewestKnownMajor is checked at load).
 */
export const NEWEST_KNOWN_MAJOR = Number(NEWEST_RPC_PROTOCOL.split('.')[0]);
/** A HELLO reply longer than 28 bytes (forks append fields) is read up to this size. */
const MAX_HELLO_REPLY = 4096;
const HELLO_REPLY = 28;
/** Sent once after HELLO meets silence: see onQuiet. */
const NUDGE = Buffer.from([0xff, 0x0d, 0x0a]);

type Stage = 'hello-caps' | 'hello-legacy' | 'device-count' | 'device-memory' | 'done';

const EXPECTED: Record<Exclude<Stage, 'done'>, number> = {
  'hello-caps': HELLO_REPLY, // major, minor, patch, pad, conn_caps[24]
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

/** Printable text of a peer's first bytes for a reason (the twin of peer_preview in probe.cc). */
export function peerPreview(data: Buffer, max = 24): string {
  let text = '';
  for (const c of data.subarray(0, max)) {
    text += c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c ? String.fromCharCode(c) : '.';
  }
  return text;
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
  #helloSize = 0; // the declared size of a 4.x+ HELLO reply (28 or more)
  #nudged = false;
  #preview = '';
  #note = '';

  requestPending(): boolean {
    return this.#pending;
  }

  #awaitingHello(): boolean {
    return this.#stage === 'hello-caps' || this.#stage === 'hello-legacy';
  }

  #expected(): number {
    if (this.#stage === 'done') return 0;
    return this.#stage === 'hello-caps' && this.#helloSize !== 0 ? this.#helloSize : EXPECTED[this.#stage];
  }

  #send(cmd: number, payload?: Buffer): Buffer {
    this.#reply = Buffer.alloc(0);
    this.#helloSize = 0;
    this.#pending = true;
    return request(cmd, payload);
  }

  #finish(outcome: StepOutcome, detail: string): { action: SessionAction } {
    this.#stage = 'done';
    this.step.outcome = outcome;
    this.step.detail = detail;
    return { action: 'done' };
  }

  #withNote(detail: string): string {
    if (!this.#note) return detail;
    return detail ? `${detail}; ${this.#note}` : this.#note;
  }

  onConnected(): Buffer {
    this.#nudged = false;
    this.#preview = '';
    // conn_caps all zero: a TCP-only client.
    return this.#send(GGML_RPC_COMMANDS.HELLO, this.#stage === 'hello-caps' ? Buffer.alloc(CONN_CAPS_SIZE) : undefined);
  }

  /** Judges the declared size once the reply's 8 header bytes are in; a result ends the session. */
  #checkDeclaredSize(): { action: SessionAction } | undefined {
    const declared = this.#reply.readBigUInt64LE(0);
    if (this.#stage === 'hello-caps' && declared >= HELLO_REPLY && declared <= MAX_HELLO_REPLY) {
      this.#helloSize = Number(declared); // 28, or longer from a fork that appends fields
      return undefined;
    }
    const expected = this.#expected();
    if (declared === BigInt(expected)) return undefined;
    if (!this.#awaitingHello()) {
      return this.#finish(
        'protocol-error',
        `${STAGE_NAME[this.#stage]} reply declares ${declared} bytes where ggml-rpc sends ${expected}`,
      );
    }
    const said = `"${this.#preview}"`;
    return this.#finish(
      'not-recognized',
      this.#nudged
        ? `answered a newline with ${said}: another protocol, not ggml-rpc`
        : `sent ${said}, not a ggml-rpc HELLO reply`,
    );
  }

  onData(chunk: Buffer): { action: SessionAction; out?: Buffer } {
    if (this.#stage === 'done') return { action: 'done' };
    if (this.#preview === '') this.#preview = peerPreview(chunk);
    if (!this.#pending)
      return this.#finish('protocol-error', `${chunk.length} bytes arrived with no request outstanding`);
    // The reply is taken piece by piece (its size is known once its header is in) and never
    // buffered beyond header + declared size; anything after it is judged without buffering.
    let used = 0;
    while (used < chunk.length) {
      const headerKnown = this.#reply.length >= HEADER_SIZE;
      const limit = HEADER_SIZE + (headerKnown ? this.#expected() : 0);
      const take = Math.min(limit - this.#reply.length, chunk.length - used);
      this.#reply = Buffer.concat([this.#reply, chunk.subarray(used, used + take)]);
      used += take;
      if (!headerKnown && this.#reply.length === HEADER_SIZE) {
        const ended = this.#checkDeclaredSize();
        if (ended) return ended;
      }
      if (this.#reply.length < HEADER_SIZE + this.#expected()) continue;
      if (used < chunk.length) {
        return this.#finish(
          'protocol-error',
          `${chunk.length - used} bytes beyond the ${STAGE_NAME[this.#stage]} reply`,
        );
      }
      this.#pending = false;
      return this.#onReply(this.#reply.subarray(HEADER_SIZE));
    }
    return { action: 'continue' };
  }

  #onReply(body: Buffer): { action: SessionAction; out?: Buffer } {
    switch (this.#stage) {
      case 'hello-caps':
      case 'hello-legacy': {
        this.step.version = [body[0] ?? 0, body[1] ?? 0, body[2] ?? 0];
        this.step.legacyHello = this.#stage === 'hello-legacy';
        this.step.devices = [];
        if (this.#helloSize > HELLO_REPLY) {
          this.#note = `its HELLO reply carries ${this.#helloSize - HELLO_REPLY} bytes beyond the 28 this probe reads (ignored)`;
        }
        const major = this.step.version[0];
        if (major === 0 || major > NEWEST_KNOWN_MAJOR) {
          return this.#finish(
            'recognized',
            this.#withNote(
              `protocol ${this.step.version.join('.')} is newer than this probe knows (up to ${NEWEST_KNOWN_MAJOR}.x); devices not queried`,
            ),
          );
        }
        if (this.#nudged) {
          // The server read HELLO and will read the nudge next, which ends the connection.
          return this.#finish(
            'recognized',
            this.#withNote('answered HELLO only after a pause (it became free during the probe); devices not queried'),
          );
        }
        if (major >= 3) {
          this.#stage = 'device-count';
          return { action: 'continue', out: this.#send(GGML_RPC_COMMANDS.DEVICE_COUNT) };
        }
        // 1.x/2.x: one device, and GET_DEVICE_MEMORY takes no index.
        this.#deviceCount = 1;
        this.#deviceIndex = 0;
        this.#stage = 'device-memory';
        return { action: 'continue', out: this.#send(GGML_RPC_COMMANDS.GET_DEVICE_MEMORY) };
      }
      case 'device-count': {
        this.#deviceCount = body.readUInt32LE(0);
        if (this.#deviceCount > MAX_DEVICES) {
          return this.#finish(
            'protocol-error',
            `DEVICE_COUNT says ${this.#deviceCount} devices, more than any server has`,
          );
        }
        if (this.#deviceCount === 0) return this.#finish('recognized', this.#withNote(''));
        this.#deviceIndex = 0;
        this.#stage = 'device-memory';
        return { action: 'continue', out: this.#send(GGML_RPC_COMMANDS.GET_DEVICE_MEMORY, deviceIndex(0)) };
      }
      case 'device-memory': {
        this.step.devices?.push({
          index: this.#deviceIndex,
          freeBytes: Number(body.readBigUInt64LE(0)),
          totalBytes: Number(body.readBigUInt64LE(8)),
        });
        if (++this.#deviceIndex >= this.#deviceCount) return this.#finish('recognized', this.#withNote(''));
        return {
          action: 'continue',
          out: this.#send(GGML_RPC_COMMANDS.GET_DEVICE_MEMORY, deviceIndex(this.#deviceIndex)),
        };
      }
      case 'done':
        return { action: 'done' };
    }
  }

  /**
   * HELLO met silence. A free ggml-rpc server answers HELLO within a round trip; a busy one
   * holds our connection unread in its accept queue; a line-based service (HTTP, Redis,
   * SMTP…) waits for a newline. The nudge, 0xff then CRLF, makes the last kind answer. It is
   * safe for a ggml-rpc server that reads it later: every version reads the command byte and,
   * finding it >= RPC_CMD_COUNT, logs "Unknown command" and closes the connection before
   * reading a size, and it sends no reply that could meet a closed socket.
   */
  onQuiet(): Buffer | undefined {
    if (!this.#awaitingHello() || !this.#pending || this.#reply.length > 0 || this.#nudged) return undefined;
    this.#nudged = true;
    return NUDGE;
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
    return this.#finish(
      'protocol-error',
      `${how} the connection during ${STAGE_NAME[this.#stage]} after ${this.#reply.length} of ${HEADER_SIZE + this.#expected()} reply bytes`,
    ).action;
  }

  onTimeout(): void {
    if (this.#stage === 'done') return;
    if (this.#reply.length === 0 && this.#awaitingHello()) {
      this.#finish(
        'silent',
        this.#nudged
          ? 'accepted the connection and answered neither HELLO nor a newline'
          : 'accepted the connection but sent no HELLO reply',
      );
    } else {
      this.#finish(
        'stalled',
        `${this.#reply.length} of ${HEADER_SIZE + this.#expected()} bytes of the ${STAGE_NAME[this.#stage]} reply arrived`,
      );
    }
  }
}
