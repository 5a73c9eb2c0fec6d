// How long a signalled command may take to wind down before the process ends regardless.
// A one-shot command prints what it has within 3 s; the watch daemon flushes, deregisters
// and stops its children within 10 s.
export const shutdownPolicy = { graceMs: 3000 };
