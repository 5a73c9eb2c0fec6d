// Servers handed to a child coordinator (`run`): from the hand-over on, they are the child's.
// Until the child has connected to each (or `awaitMs` passed, or it is handed back) the
// watcher connects to nothing at all: a probe of ours could take the slot the child is about
// to take. Once connected, a server the child holds is judged by that connection, read from
// /proc as any coordinator's is, whatever the child's command line looks like; a server the
// child no longer holds (it closed, the server went away) is checked as any other.
import { heldServers } from '../resolver/for-watcher.js';

export class HandedServers {
  #pid?: number;
  /** heldKey → whether the child has been seen holding it. */
  #keys = new Map<string, boolean>();
  #awaitUntil = 0;
  #heldNow = new Set<string>();

  /** Hands `keys` (heldKeys) to the child `pid`, which has `awaitMs` to connect to them. */
  set(pid: number, keys: readonly string[], awaitMs: number): void {
    this.#pid = pid;
    this.#keys = new Map(keys.map((key) => [key, false]));
    this.#awaitUntil = performance.now() + awaitMs;
    this.#heldNow = new Set();
  }

  clear(): void {
    this.#pid = undefined;
    this.#keys = new Map();
    this.#heldNow = new Set();
  }

  get active(): boolean {
    return this.#pid !== undefined;
  }

  /** Reads which handed servers the child holds now (/proc). */
  async refresh(): Promise<void> {
    const pid = this.#pid;
    if (pid === undefined) return;
    const held = await heldServers([pid]).catch(() => new Map<string, number>());
    if (pid !== this.#pid) return; // handed back meanwhile
    this.#heldNow = new Set([...this.#keys.keys()].filter((key) => held.has(key)));
    for (const key of this.#heldNow) this.#keys.set(key, true);
  }

  /** Whether some handed server has not seen the child's connection yet, within the bound. */
  get awaiting(): boolean {
    if (this.#pid === undefined || performance.now() >= this.#awaitUntil) return false;
    return [...this.#keys.values()].some((seen) => !seen);
  }

  /** The handed servers the child holds now (as of the last refresh) → why that is known. */
  held(): Map<string, string> {
    const why = `pid ${this.#pid} (the coordinator this supervisor runs) holds a connection to it`;
    return new Map([...this.#heldNow].map((key) => [key, why]));
  }
}
