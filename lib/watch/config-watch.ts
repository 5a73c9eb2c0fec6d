// The config source, read by the watcher: a bad edit keeps the last good file (each bad line
// said once, as file:line: token), a file that cannot be read keeps it too, and an edit is
// used only once two reads a moment apart agree. The file's directory is watched, so an edit
// asks for a resolve at once.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

import { readConfigFile, type LoadedConfig } from '../resolver/for-watcher.js';
import type { WatchLogFn } from './types.js';

/** A changed config file is read again this long after, and used only when both reads agree. */
export const CONFIG_SETTLE_MS = 250;

/** What a config file says, as one text to compare two reads by. */
const configText = (config: LoadedConfig | null | undefined): string =>
  config ? JSON.stringify([config.file, config.candidates, config.dropped, config.warnings, config.rpcVersion]) : '';

export interface ConfigWatchHooks {
  log: WatchLogFn;
  /** The file changed: resolve now. */
  reload: () => void;
  /** The file is changing: resolve again within `ms`. */
  resolveWithin: (ms: number) => void;
  closing: () => boolean;
}

export class ConfigWatch {
  readonly #configPath: string | undefined;
  readonly #hooks: ConfigWatchHooks;
  #lastGood?: LoadedConfig | null;
  #problem?: string;
  #watching?: { file: string; watcher: FSWatcher };

  constructor(configPath: string | undefined, hooks: ConfigWatchHooks) {
    this.#configPath = configPath;
    this.#hooks = hooks;
  }

  /** The last good read: undefined before one, null when there was no file. */
  get lastGood(): LoadedConfig | null | undefined {
    return this.#lastGood;
  }

  close(): void {
    this.#watching?.watcher.close();
  }

  /** The config as the resolve uses it: this read, or the last good one over a bad edit. */
  async load(): Promise<LoadedConfig | null> {
    const log = this.#hooks.log;
    let loaded: LoadedConfig | null;
    try {
      loaded = await readConfigFile(this.#configPath);
      if (await this.#changing(loaded)) return this.#lastGood as LoadedConfig | null;
    } catch (error) {
      const problem = (error as Error).message;
      if (problem !== this.#problem) log('error', 'config file unreadable', { error: problem });
      this.#problem = problem;
      if (this.#lastGood !== undefined) return this.#lastGood;
      throw error;
    }
    this.#watch(loaded?.file ?? this.#configPath);
    if (loaded && loaded.warnings.length > 0) {
      const problem = loaded.warnings.join('\n');
      const keep = this.#lastGood !== undefined;
      if (problem !== this.#problem) {
        for (const line of loaded.warnings) log('error', 'config: bad line', { line });
        if (keep) log('warn', 'config: keeping the last good version until the file is fixed');
      }
      this.#problem = problem;
      if (keep) return this.#lastGood ?? null;
      return loaded;
    }
    if (this.#problem !== undefined) log('info', 'config file good again', { file: loaded?.file });
    this.#problem = undefined;
    this.#lastGood = loaded;
    return loaded;
  }

  /**
   * An edit is used only once it is stable: a file read while it is being written can be half
   * there, and would remove the backends of its missing lines. Read it again a moment later;
   * while the two reads differ, the last good version stands and a resolve is due soon.
   */
  async #changing(loaded: LoadedConfig | null): Promise<boolean> {
    const last = this.#lastGood;
    if (last === undefined || configText(loaded) === configText(last)) return false;
    await new Promise((resolve) => setTimeout(resolve, CONFIG_SETTLE_MS));
    const again = await readConfigFile(this.#configPath);
    if (configText(again) === configText(loaded)) return false;
    this.#hooks.log('info', 'config file is changing; keeping the last good version until it settles', {
      file: loaded?.file ?? last?.file,
    });
    this.#hooks.resolveWithin(4 * CONFIG_SETTLE_MS);
    return true;
  }

  /** An edit of the config file asks for a resolve (editors replace the file: watch its directory). */
  #watch(file: string | undefined): void {
    if (file === undefined || this.#watching?.file === file || this.#hooks.closing()) return;
    this.#watching?.watcher.close();
    this.#watching = undefined;
    const log = this.#hooks.log;
    let debounce: NodeJS.Timeout | undefined;
    try {
      const watcher = watch(dirname(file), { persistent: false }, (_event, name) => {
        if (name !== basename(file)) return;
        clearTimeout(debounce);
        debounce = setTimeout(() => {
          log('info', 'config file changed', { file });
          this.#hooks.reload();
        }, 200);
      });
      watcher.on('error', (error) => log('warn', 'cannot watch the config file', { file, error: error.message }));
      this.#watching = { file, watcher };
    } catch (error) {
      log('warn', 'cannot watch the config file; it is read again every resolve', {
        file,
        error: (error as Error).message,
      });
    }
  }
}
