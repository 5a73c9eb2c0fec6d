// systemd's notify protocol (Type=notify): READY=1, STATUS=…, WATCHDOG=1 and STOPPING=1 as
// datagrams to $NOTIFY_SOCKET. Node has no AF_UNIX datagram socket; the addon sends them.
import { loadBinding } from '../scan/addon/load.js';

export class SystemdNotifier {
  readonly socket: string;
  readonly #send: (path: string, message: string) => number;
  readonly #onError: (message: string) => void;
  #failed = false;

  constructor(socket: string, send: (path: string, message: string) => number, onError: (message: string) => void) {
    this.socket = socket;
    this.#send = send;
    this.#onError = onError;
  }

  /**
   * The notifier systemd asked for with $NOTIFY_SOCKET, or undefined when it did not. When the
   * addon cannot send, `onError` says so (systemd would otherwise wait for READY=1 in silence).
   */
  static fromEnvironment(onError: (message: string) => void, env = process.env): SystemdNotifier | undefined {
    const socket = env.NOTIFY_SOCKET;
    if (!socket) return undefined;
    const { binding, error } = loadBinding();
    if (!binding?.notifyDatagram) {
      onError(
        `NOTIFY_SOCKET is set but the native addon cannot send to it (${error?.message ?? 'an older addon without notifyDatagram'}); use Type=simple or rebuild the addon`,
      );
      return undefined;
    }
    return new SystemdNotifier(socket, binding.notifyDatagram.bind(binding), onError);
  }

  /** Sends "KEY=value" lines; a failure is said once, and again only after a success. */
  notify(...lines: string[]): void {
    const errno = this.#send(this.socket, lines.join('\n'));
    if (errno === 0) {
      this.#failed = false;
      return;
    }
    if (!this.#failed) this.#onError(`cannot notify systemd at ${this.socket}: errno ${errno}`);
    this.#failed = true;
  }
}

/**
 * The watchdog period systemd asked for, halved (the interval to send WATCHDOG=1 at), or
 * undefined: $WATCHDOG_USEC, for this process when $WATCHDOG_PID names one.
 */
export function watchdogIntervalMs(env = process.env): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isInteger(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

/**
 * WATCHDOG=1 at the interval systemd asked for, only while the daemon's loop really turns: a
 * step busy for longer than two intervals stops the pings (`onStuck` says so) and systemd
 * restarts the service. Undefined when there is no notifier or no watchdog.
 */
export function startWatchdog(
  notifier: SystemdNotifier | undefined,
  busyForMs: () => number,
  onStuck: (busyForMs: number) => void,
  env = process.env,
): NodeJS.Timeout | undefined {
  const watchdogMs = notifier ? watchdogIntervalMs(env) : undefined;
  if (!notifier || watchdogMs === undefined) return undefined;
  return setInterval(() => {
    const busy = busyForMs();
    if (busy < watchdogMs * 2) notifier.notify('WATCHDOG=1');
    else onStuck(busy);
  }, watchdogMs);
}
