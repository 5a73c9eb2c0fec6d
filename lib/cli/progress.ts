// A one-line progress display on stderr, for a person watching a scan that takes a while.
const SHOW_AFTER_MS = 1000;
const REDRAW_MS = 200;

export interface Progress {
  tick(open: boolean): void;
  stop(): void;
}

export function startProgress(stream: NodeJS.WriteStream, total: () => number | undefined): Progress {
  if (!stream.isTTY) return { tick() {}, stop() {} };
  let done = 0;
  let open = 0;
  let drawn = false;
  const draw = () => {
    const of = total();
    const width = 24;
    const fill = of ? Math.round((done / of) * width) : 0;
    stream.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${of ?? '?'} scanned, ${open} open `);
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
