// A supervised coordinator's state for the snapshot: folded from the events the watcher
// publishes for it, and from what its supervisor says between them (waiting, stopped).
import type { CoordinatorEvent, CoordinatorState, CoordinatorStatus } from './types.js';

export class CoordinatorStatusKeeper {
  #status?: CoordinatorStatus;

  /** A copy; undefined until a supervisor said something. */
  get view(): CoordinatorStatus | undefined {
    return this.#status && structuredClone(this.#status);
  }

  apply(event: CoordinatorEvent): void {
    const { pid, servers, msToReady, reason, code, signal } = event.coordinator;
    switch (event.type) {
      case 'coordinator-starting':
        this.#enter('starting', event.time, { pid, servers });
        break;
      case 'coordinator-ready':
        this.#enter('ready', event.time, { pid, servers, lastMsToReady: msToReady });
        break;
      case 'coordinator-exited': {
        // Between runs until the supervisor says more (restarting, waiting, stopped).
        const how = signal ? `signal ${signal}` : `code ${code}`;
        this.#enter('restarting', event.time, { reason: `exited (${how})` });
        break;
      }
      case 'coordinator-restarting':
        this.#enter('restarting', event.time, { servers, reason, restarts: (this.#status?.restarts ?? 0) + 1 });
        break;
      case 'coordinator-crash-loop':
        this.#enter('crash-loop', event.time, { reason });
        break;
    }
  }

  /** What the supervisor says between events: waiting for servers (and why), or stopped. */
  set(state: 'waiting' | 'stopped', reason?: string): void {
    this.#enter(state, new Date().toISOString(), { reason });
  }

  /** The new state with the fields given (undefined ones keep theirs); a pid only while a child runs. */
  #enter(state: CoordinatorState, time: string, changes: Partial<CoordinatorStatus>): void {
    const before = this.#status ?? { state, since: time, restarts: 0 };
    const next: CoordinatorStatus = { ...before, state, since: before.state === state ? before.since : time };
    for (const [field, value] of Object.entries(changes)) {
      if (value !== undefined) Object.assign(next, { [field]: value });
    }
    if (state !== 'starting' && state !== 'ready') delete next.pid;
    // Why it waited no longer holds once it starts; why it restarted does.
    if (state === 'starting' && before.state === 'waiting') delete next.reason;
    this.#status = next;
  }
}
