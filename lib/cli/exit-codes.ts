// The CLI's exit codes: a contract that users' scripts rely on.
export const EXIT = {
  /** At least one open port (scan) / found. */
  found: 0,
  /** Nothing open (scan); reachable but not healthy (probe). */
  none: 1,
  usage: 2,
  environment: 3,
  /** probe: a connection failed. */
  connectionFailed: 4,
  /** run: the coordinator kept failing (--max-restarts in a row); the supervisor gave up. */
  crashLoop: 5,
  /** A bug: an error the CLI does not expect. */
  internal: 70,
  interrupted: 130,
} as const;

/** A bad command line; exits 2 with the message. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The machine cannot do what was asked (no addon, port in use); exits 3. */
export class EnvironmentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EnvironmentError';
  }
}
