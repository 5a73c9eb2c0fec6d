// A one-line progress display on stderr, for a person watching a scan that takes a while.
// It moves even while nothing answers (a /16 of silent hosts): elapsed time, done/total,
// open so far, and how many connects are in flight.
const SHOW_AFTER_MS = 1000;
const REDRAW_MS = 200;

export interface Progress {
  tick(open: boolean): void;
  stop(): void;
}

export interface ProgressSource {
  /** Targets in the job, once known. */
  total(): number | undefined;
  /** The most connects in flight at once (the window), for the in-flight estimate. */
  window(): number | undefined;
  /** Extra attempts for silent targets (--retries), shown when on. */
  retries: number;
}

/** The line itself, for a given moment: pure, so tests can read it. */
export function progressLine(elapsedMs: number, done: number, open: number, source: ProgressSource): string {
  const of = source.total();
  const width = 20;
  const fill = of ? Math.min(width, Math.round((done / of) * width)) : 0;
  // Neither engine reports its window's occupancy: what is left, capped by the window, is
  // what can be in flight, and is labelled as the estimate it is.
  const left = of === undefined ? undefined : of - done;
  const window = source.window();
  const inFlight = left === undefined ? '?' : window ? Math.min(left, window) : left;
  const retries = source.retries > 0 ? `, up to ${source.retries + 1} attempts each` : '';
  return `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(elapsedMs / 1000).toFixed(1)} s, ${done}/${of ?? '?'} done, ${open} open, ~${inFlight} in flight${retries} `;
}

export function startProgress(stream: NodeJS.WriteStream, source: ProgressSource): Progress {
  if (!stream.isTTY) return { tick() {}, stop() {} };
  const started = performance.now();
  let done = 0;
  let open = 0;
  let drawn = false;
  const draw = () => {
    stream.write(`\r\x1b[2K${progressLine(performance.now() - started, done, open, source)}`);
    drawn = true;
  };
  let timer: NodeJS.Timeout | undefined;
  const start = setTimeout(() => {
    draw();
    timer = setInterval(draw, REDRAW_MS);
    timer.unref();
  }, SHOW_AFTER_MS);
  start.unref();
  return {
    tick(isOpen) {
      done++;
      if (isOpen) open++;
    },
    stop() {
      clearTimeout(start);
      clearInterval(timer);
      if (drawn) stream.write('\r\x1b[2K');
    },
  };
}
