// The coordinator supervisor (`scan-backends run`): a watcher's usable set in, a running
// coordinator out. Once a usable set exists (what `choose` accepts: by default --min-servers
// of them) the command starts with it; it is restarted with the survivors when a server it
// uses is lost (down after the watcher's hysteresis, or the child exits, as llama.cpp aborts
// when a server goes), and grows by --grow when servers return or appear. Failed starts in a
// row back off (1 s, doubling, up to backoffMaxMs); at maxRestarts the supervisor gives up:
// a crash loop. The servers a child uses are handed to the watcher as the child's: never
// connected to by us, judged by the child's own connections.
//
// One loop, one child at a time: choose, claim, start, watch it (exit, loss, growth, health,
// a lost claim, stop), stop it, release, back off.
import { formatHostPort } from '../common/host-port.js';
import { normalizeRunOptions, type RunSettings, type RunTuning } from '../common/options.js';
import type { CoordinatorDetails, CoordinatorEventType, WatchedBackend, WatchLogFn } from '../watch/types.js';
import type { Watcher } from '../watch/watcher.js';
import { CoordinatorChild, type ChildExit } from './child.js';
import { coordinatorHealth, coordinatorIdle, healthUrlFor } from './coordinator-http.js';

/** What to start with: the --rpc list and the arguments that go with it; or why not yet. */
export type Choice = { rpc: string[]; extraArgs: string[] } | { wait: string };

/** Chooses from the usable servers (address order); the planner plugs in here. */
export type Chooser = (usable: WatchedBackend[]) => Choice;

/** The servers a child uses, claimed in a registry several supervisors share. */
export interface Claims {
  /** Claims every one of `servers`; throws when another supervisor holds one. */
  claim(servers: string[]): Promise<void>;
  release(): Promise<void>;
  /** `cb` runs when a claim this supervisor held is lost (its lease expired, taken). */
  onLost(cb: (why: string) => void): void;
}

export interface SupervisorOptions extends RunTuning {
  /** A watcher (started by the caller); its usable set is what the coordinator is given. */
  watcher: Watcher;
  /** The coordinator's argv: `--rpc LIST` is appended, or replaces an argument `{rpc}`. */
  command: readonly string[];
  /** Default: the whole usable set, once it has minServers servers. */
  choose?: Chooser;
  claims?: Claims;
  log?: WatchLogFn;
  /** The descriptor the child's raw output goes to too (default 2, our stderr; null: only the log). */
  passThroughFd?: number | null;
}

/** How run() ended: stopped (stop()), or a crash loop (it gave up). */
export type SupervisorOutcome = 'stopped' | 'crash-loop';

/** The placeholder an argument of the command may be, replaced by the --rpc list. */
export const RPC_PLACEHOLDER = '{rpc}';

/** The whole usable set, once it has `minServers` servers. */
export function wholeUsableSet(minServers: number): Chooser {
  return (usable) =>
    usable.length >= minServers
      ? { rpc: usable.map(formatHostPort), extraArgs: [] }
      : { wait: `${usable.length} of ${minServers} servers usable` };
}

/** The command line a choice starts: `{rpc}` replaced, else `--rpc LIST` appended; then the extra arguments. */
export function commandLine(command: readonly string[], choice: { rpc: string[]; extraArgs: string[] }): string[] {
  const list = choice.rpc.join(',');
  const substituted = command.includes(RPC_PLACEHOLDER);
  const argv = command.map((arg) => (arg === RPC_PLACEHOLDER ? list : arg));
  return [...argv, ...(substituted ? [] : ['--rpc', list]), ...choice.extraArgs];
}

/** Before it is ready, its health is asked this often; after, every HEALTH_MS. */
const STARTING_POLL_MS = 100;
const HEALTH_MS = 1000;
/** How long after a child's exit the watcher's check of its servers may take. */
const AFTER_EXIT_CHECK_MS = 10_000;
const FIRST_BACKOFF_MS = 1000;

/** Why one child's run ended, and whether it counts as a failed start. */
interface RunEnd {
  reason: string;
  failed: boolean;
  /** Ready for stableMs: the failures before it are forgotten. */
  stable: boolean;
}

export class Supervisor {
  readonly #settings: RunSettings;
  readonly #options: SupervisorOptions;
  readonly #choose: Chooser;
  readonly #log: WatchLogFn;
  #stopping = false;
  #wake?: () => void;
  #claimLost?: string;
  #waitingSaid?: string;
  #child?: CoordinatorChild;
  #outcome?: Promise<SupervisorOutcome>;

  constructor(options: SupervisorOptions) {
    this.#settings = normalizeRunOptions(options);
    if (options.command.length === 0) throw new TypeError('command: the coordinator to run is missing');
    this.#options = options;
    this.#choose = options.choose ?? wholeUsableSet(this.#settings.minServers);
    this.#log = options.log ?? (() => {});
    options.claims?.onLost((why) => {
      this.#claimLost = why;
      this.#wake?.();
    });
    options.watcher.on('usable', () => this.#wake?.());
  }

  /** The running child's pid, if one runs. */
  get pid(): number | undefined {
    return this.#child?.exit ? undefined : this.#child?.pid;
  }

  /** Runs until stop() or a crash loop; the child is stopped either way. */
  run(): Promise<SupervisorOutcome> {
    this.#outcome ??= this.#loop();
    return this.#outcome;
  }

  /** Stops the child gracefully (SIGTERM, SIGKILL after stopGraceMs); run() then resolves. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#outcome;
  }

  #event(type: CoordinatorEventType, details: CoordinatorDetails): void {
    this.#options.watcher.coordinatorEvent(type, details);
  }

  /** The usable servers a start may take: those whose last check did not fail (suspects wait). */
  #usable(): WatchedBackend[] {
    return this.#options.watcher.snapshot().backends.filter((b) => b.usable && b.lastCheck?.ok !== false);
  }

  /** Until the usable set changes, a claim is lost, stop(), or `ms` pass. */
  async #pause(ms: number): Promise<void> {
    if (this.#stopping) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = undefined;
  }

  async #loop(): Promise<SupervisorOutcome> {
    const { maxRestarts, backoffMaxMs, settleMs } = this.#settings;
    let failures = 0;
    let restartReason: string | undefined;
    this.#options.watcher.coordinatorState('waiting');
    while (!this.#stopping) {
      const choice = this.#choose(this.#usable());
      if ('wait' in choice) {
        this.#sayWaiting(choice.wait);
        await this.#pause(HEALTH_MS);
        continue;
      }
      if (this.#options.claims) {
        try {
          await this.#options.claims.claim(choice.rpc);
        } catch (error) {
          this.#sayWaiting(`a server is claimed by another supervisor: ${(error as Error).message}`);
          await this.#pause(Math.max(settleMs, HEALTH_MS));
          continue;
        }
      }
      this.#waitingSaid = undefined;
      this.#claimLost = undefined;
      if (restartReason !== undefined)
        this.#event('coordinator-restarting', { reason: restartReason, servers: choice.rpc });
      const end = await this.#runOne(choice);
      await this.#options.claims
        ?.release()
        .catch((error: Error) => this.#log('warn', 'releasing the claims failed', { error: error.message }));
      if (this.#stopping) break;
      if (end.stable) failures = 0;
      if (end.failed) failures += 1;
      if (failures >= maxRestarts) {
        const reason = `${failures} failed starts in a row; the last: ${end.reason}`;
        this.#event('coordinator-crash-loop', { reason, failures });
        this.#log('error', 'coordinator crash loop: not restarting it', { reason });
        return 'crash-loop';
      }
      restartReason = end.reason;
      const backoff = failures <= 1 ? 0 : Math.min(backoffMaxMs, FIRST_BACKOFF_MS * 2 ** (failures - 2));
      this.#log('info', 'coordinator restarting', { reason: end.reason, failures, backoffMs: backoff });
      if (backoff > 0) await this.#sleepUnlessStopped(backoff);
    }
    this.#options.watcher.coordinatorState('stopped');
    return 'stopped';
  }

  async #sleepUnlessStopped(ms: number): Promise<void> {
    const until = performance.now() + ms;
    while (!this.#stopping && performance.now() < until) await this.#pause(until - performance.now());
  }

  #sayWaiting(why: string): void {
    if (why === this.#waitingSaid) return;
    this.#waitingSaid = why;
    this.#options.watcher.coordinatorState('waiting', why);
    this.#log('info', 'coordinator waiting', { reason: why });
  }

  /** One child: started, watched until something ends it, stopped. */
  async #runOne(choice: { rpc: string[]; extraArgs: string[] }): Promise<RunEnd> {
    const { watcher } = this.#options;
    const settings = this.#settings;
    const argv = commandLine(this.#options.command, choice);
    const healthUrl = settings.healthUrl ?? healthUrlFor(argv);
    let child: CoordinatorChild;
    try {
      child = await CoordinatorChild.start(argv, {
        onLine: (stream, line) => this.#log('info', `coordinator: ${line}`, { stream }),
        passThroughFd: this.#options.passThroughFd,
      });
    } catch (error) {
      const reason = `cannot start ${argv[0]}: ${(error as Error).message}`;
      this.#log('error', 'coordinator not started', { error: reason });
      return { reason, failed: true, stable: false };
    }
    this.#child = child;
    const started = performance.now();
    // From now on its servers are its own: nothing of ours connects to them until it has.
    watcher.handOver(child.pid, choice.rpc, settings.readyTimeoutMs);
    this.#event('coordinator-starting', { pid: child.pid, servers: choice.rpc });
    this.#log('info', 'coordinator started', { pid: child.pid, argv, healthUrl, diesWithUs: child.diesWithUs });
    void child.exited.then(() => this.#wake?.());

    let readyAt: number | undefined;
    let unhealthySince: number | undefined;
    let growSeen: string | undefined;
    let growSince = 0;
    const current = new Set(choice.rpc);
    const stopWith = async (reason: string, failed: boolean): Promise<RunEnd> => {
      await child.stop(settings.stopGraceMs);
      this.#ended(child);
      return { reason, failed, stable: stableFor(readyAt, settings.stableMs) };
    };
    for (;;) {
      if (this.#stopping) return stopWith('stopped', false);
      if (child.exit) return this.#exitedOnItsOwn(child, current, readyAt);
      const now = performance.now();
      if (this.#claimLost !== undefined) return stopWith(`claim lost: ${this.#claimLost}`, false);

      const usable = watcher.snapshot().backends.filter((b) => b.usable);
      const usableKeys = new Set(usable.map(formatHostPort));
      const lost = [...current].filter((key) => !usableKeys.has(key));
      if (lost.length > 0) return stopWith(`lost ${lost.join(',')}`, false);

      const grown = this.#grownChoice(current);
      if (grown === undefined) growSeen = undefined;
      else if (grown !== growSeen) [growSeen, growSince] = [grown, now];
      if (grown !== undefined && readyAt !== undefined) {
        const why = await this.#mayGrow(healthUrl, now - growSince);
        if (why) return stopWith(`grow to ${grown} (${why})`, false);
      }

      const health = await coordinatorHealth(healthUrl, HEALTH_MS);
      if (child.exit) continue;
      if (health === 'ready') {
        unhealthySince = undefined;
        if (readyAt === undefined) {
          readyAt = performance.now();
          const msToReady = Math.round(readyAt - started);
          this.#event('coordinator-ready', { pid: child.pid, msToReady, servers: choice.rpc });
          this.#log('info', 'coordinator ready', { pid: child.pid, msToReady });
        }
      } else if (readyAt === undefined) {
        if (performance.now() - started > settings.readyTimeoutMs)
          return stopWith(`not ready within ${settings.readyTimeoutMs} ms (${healthUrl}: ${health})`, true);
      } else {
        unhealthySince ??= performance.now();
        if (performance.now() - unhealthySince > settings.unhealthyMs)
          return stopWith(`unhealthy for ${settings.unhealthyMs} ms (${healthUrl}: ${health})`, true);
      }
      await this.#pause(readyAt === undefined ? STARTING_POLL_MS : HEALTH_MS);
    }
  }

  /**
   * It exited unasked. Its servers are free again: the watcher checks them now, and a server
   * whose check fails is what it lost (llama.cpp aborts when a server goes); with none lost,
   * this was a failed start.
   */
  async #exitedOnItsOwn(child: CoordinatorChild, current: Set<string>, readyAt: number | undefined): Promise<RunEnd> {
    const { watcher } = this.#options;
    const exit = child.exit as ChildExit;
    this.#ended(child);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      watcher.checkNow(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, AFTER_EXIT_CHECK_MS))),
    ]);
    clearTimeout(timer);
    const failing = new Set(
      watcher
        .snapshot()
        .backends.filter((b) => !b.usable || b.lastCheck?.ok === false)
        .map(formatHostPort),
    );
    const lost = [...current].filter((key) => failing.has(key));
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    const stable = stableFor(readyAt, this.#settings.stableMs);
    if (lost.length > 0) return { reason: `exited (${how}); lost ${lost.join(',')}`, failed: false, stable };
    return { reason: `exited (${how})`, failed: true, stable };
  }

  /** Its exit said, its servers handed back. */
  #ended(child: CoordinatorChild): void {
    this.#options.watcher.handBack();
    const exit = child.exit as ChildExit;
    this.#event('coordinator-exited', { pid: child.pid, code: exit.code, signal: exit.signal });
    this.#log('info', 'coordinator exited', { pid: child.pid, code: exit.code, signal: exit.signal });
    this.#child = undefined;
  }

  /** The --rpc list a start would take now, when it holds every current server and more. */
  #grownChoice(current: Set<string>): string | undefined {
    if (this.#settings.grow === 'never') return undefined;
    const choice = this.#choose(this.#usable());
    if ('wait' in choice) return undefined;
    const more = choice.rpc.length > current.size && [...current].every((key) => choice.rpc.includes(key));
    return more ? choice.rpc.join(',') : undefined;
  }

  /** Whether to restart now to grow, and why; undefined to wait. */
  async #mayGrow(healthUrl: string, heldStillMs: number): Promise<string | undefined> {
    if (this.#settings.grow === 'always') return '--grow always';
    const idle = await coordinatorIdle(healthUrl, HEALTH_MS);
    if (idle === true) return 'the coordinator is idle';
    if (idle === undefined && heldStillMs >= this.#settings.settleMs)
      return `its idleness cannot be told; the set held still ${this.#settings.settleMs} ms`;
    return undefined;
  }
}

function stableFor(readyAt: number | undefined, stableMs: number): boolean {
  return readyAt !== undefined && performance.now() - readyAt >= stableMs;
}

/** Starts supervising: `await supervisor.run()` ends in 'stopped' or 'crash-loop'. */
export function superviseCoordinator(options: SupervisorOptions): Supervisor {
  const supervisor = new Supervisor(options);
  void supervisor.run();
  return supervisor;
}
