// Where an engine is chosen: the addon when it loads, else (for 'auto') the pure-JS twin.
import { engineOption, checkChoiceOption, POLLERS, type EngineChoice, type Poller } from '../../common/options.js';
import { NativeUnavailableError } from '../../common/errors.js';
import { loadBinding } from '../addon/load.js';
import type { Scanner } from './index.js';
import { createJsScanner } from './js.js';
import { createNativeScanner } from './native.js';

export interface EngineSelection {
  scanner: Scanner;
  /** Why 'auto' fell back to the JS engine, when it did. */
  fallbackReason?: string;
}

/** Picks the engine: the addon when it loads, else (for 'auto') the JS twin, saying why. */
export function selectEngine(choice?: EngineChoice, poller: Poller = 'auto'): EngineSelection {
  checkChoiceOption('poller', poller, POLLERS);
  const engine = engineOption(choice);
  if (engine === 'js') return { scanner: createJsScanner() };
  const load = loadBinding();
  if (load.binding) return { scanner: createNativeScanner(load.binding, poller) };
  if (engine === 'native') {
    throw new NativeUnavailableError(`native engine unavailable: ${load.error.message}`, { cause: load.error });
  }
  return {
    scanner: createJsScanner(),
    fallbackReason: `native addon unavailable (${load.error.message.split('\n')[0]})`,
  };
}
