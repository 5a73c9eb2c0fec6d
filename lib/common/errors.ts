// Every error the library throws. Match on `code`, never on the message: codes are stable,
// messages name the input and the limit and may be reworded.

const brand = Symbol.for('scan-backends.error');

export class ScanBackendsError extends Error {
  readonly code: string;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ScanBackendsError';
    this.code = code;
    Object.defineProperty(this, brand, { value: true });
  }

  // instanceof holds across two copies of the package in one process.
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this === ScanBackendsError) {
      return typeof value === 'object' && value !== null && brand in value;
    }
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/** A target, exclusion or port list that does not parse, or a guard it trips. */
export class InvalidTargetError extends ScanBackendsError {
  readonly token: string;
  /** The file the token was read from (a config file), when it was not given directly. */
  readonly file?: string;

  constructor(token: string, message: string, options?: { cause?: unknown; file?: string }) {
    super(message, 'SB_INVALID_TARGET', options);
    this.name = 'InvalidTargetError';
    this.token = token;
    if (options?.file !== undefined) this.file = options.file;
  }
}

/** An option with a value outside its range ("timeoutMs: must be an integer 1..3600000"). */
export class InvalidOptionError extends ScanBackendsError {
  constructor(message: string) {
    super(message, 'SB_INVALID_OPTION');
    this.name = 'InvalidOptionError';
  }
}

/** engine: 'native' was asked for and the addon could not be loaded. */
export class NativeUnavailableError extends ScanBackendsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'SB_NATIVE_UNAVAILABLE', options);
    this.name = 'NativeUnavailableError';
  }
}

/** The native engine failed to start (no poller, no thread); `code` is the core's status. */
export class NativeScanError extends ScanBackendsError {
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, code, options);
    this.name = 'NativeScanError';
  }
}

/** A source the caller required (--require-redis) could not be used. */
export class SourceUnavailableError extends ScanBackendsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'SB_SOURCE_UNAVAILABLE', options);
    this.name = 'SourceUnavailableError';
  }
}

/** A scan stopped by its deadline. A caller's own AbortSignal rejects with its own reason. */
export class ScanAbortedError extends ScanBackendsError {
  constructor(message: string) {
    super(message, 'SB_ABORTED');
    this.name = 'AbortError';
  }
}

/**
 * A GGUF file that cannot be read as a model: not GGUF, truncated, a version or tensor type
 * llama.cpp does not load, a count or size past a cap. `offset` is the byte where it went
 * wrong, when there is one.
 */
export class GgufError extends ScanBackendsError {
  readonly path: string;
  readonly offset: number | undefined;

  constructor(path: string, offset: number | undefined, what: string) {
    super(offset === undefined ? `${path}: ${what}` : `${path}: byte ${offset}: ${what}`, 'SB_GGUF');
    this.name = 'GgufError';
    this.path = path;
    this.offset = offset;
  }
}

/**
 * A server a coordinator was to be given is claimed by another watcher's coordinator (a
 * ggml-rpc server serves one client at a time); `holder` is who, as its claim says.
 */
export class ClaimTakenError extends ScanBackendsError {
  readonly server: string;
  readonly holder: { watcher: string; host: string } | undefined;

  constructor(server: string, holder: { watcher: string; host: string } | undefined, message: string) {
    super(message, 'SB_CLAIM_TAKEN');
    this.name = 'ClaimTakenError';
    this.server = server;
    this.holder = holder;
  }
}
