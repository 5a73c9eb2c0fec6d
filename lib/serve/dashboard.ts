// GET /: the dashboard, one self-contained page (no CDN, no font, nothing fetched but this
// server's own API). The server renders the tables, so the page is whole without JavaScript;
// the page's one script re-fetches the rendered fragments when an event arrives over SSE,
// and polls every 3 s when the stream is down. One renderer for both: the fragments below.
// The pictures (each backend's last hour, the usable set's free memory) are SVG drawn here
// from the watcher's history, so they need no script either; the script only refreshes them.
// Narrow screens get a card per backend, wide ones the table, a wall larger figures (CSS).
// Everything a peer said is HTML-escaped here. The script and the style are allowed by their
// hashes in the Content-Security-Policy; nothing else runs.
import { createHash } from 'node:crypto';

import { formatHostPort } from '../common/host-port.js';
import type { ScannerInfo } from '../redis/fleet.js';
import type {
  CoordinatorStatus,
  DroppedServer,
  HistorySpan,
  HistoryState,
  WatchedBackend,
  WatchEvent,
  WatchHistory,
  WatchSnapshot,
} from '../watch/types.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

const GiB = 1024 ** 3;
const gib = (bytes: number) => `${(bytes / GiB).toFixed(bytes >= 100 * GiB ? 0 : 1)} GiB`;

/** As the page and the API show it: up and usable, busy, down, or up but left out for its protocol (never a colour alone). */
export function displayState(b: WatchedBackend): 'up' | 'busy' | 'down' | 'left-out' {
  if (b.state === 'down') return 'down';
  if (b.leftOut !== undefined) return 'left-out';
  return b.health === 'busy' ? 'busy' : 'up';
}

/** A duration in words: "12 s", "4 min", "2 h". */
function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

function ago(iso: string | undefined, now: number): string {
  return iso ? `${duration(Math.max(0, now - Date.parse(iso)))} ago` : '';
}

/** One device's free memory: the bar fills with what is free (red under 10 %), and says so in words. */
function deviceMemory(d: { index: number; freeBytes: number; totalBytes: number }, label: boolean): string {
  const words = `<strong class="free">${escapeHtml(gib(d.freeBytes))}</strong> free of <span class="amount">${escapeHtml(gib(d.totalBytes))}</span>`;
  return `<div class="device"><meter min="0" max="${d.totalBytes}" low="${0.1 * d.totalBytes}" high="${0.25 * d.totalBytes}" optimum="${d.totalBytes}" value="${d.freeBytes}"></meter> <span>${label ? `dev ${d.index}: ` : ''}${words}</span></div>`;
}

const STRIP_MINUTES = 60;
const WORST: readonly HistoryState[] = ['down', 'busy', 'up'];

/**
 * A backend's last hour as a status page draws it: a bar per minute, coloured by the worst
 * state in it (none before the watcher knew it), with the time in each state in words.
 */
export function historyStrip(spans: readonly HistorySpan[], history: Pick<WatchHistory, 'now' | 'windowMs'>): string {
  const now = Date.parse(history.now);
  const start = now - history.windowMs;
  const slot = history.windowMs / STRIP_MINUTES;
  const periods = spans.map((s, i) => ({
    state: s.state,
    from: Math.max(start, Date.parse(s.from)),
    to: i + 1 < spans.length ? Date.parse((spans[i + 1] as HistorySpan).from) : now,
  }));
  // Each period marks the minutes it touches, the worst state winning: one walk, not 60.
  const worst: (HistoryState | undefined)[] = [];
  const time = new Map<HistoryState, number>();
  for (const p of periods) {
    if (p.to <= start) continue;
    time.set(p.state, (time.get(p.state) ?? 0) + Math.max(0, p.to - p.from));
    const first = Math.min(STRIP_MINUTES - 1, Math.floor((p.from - start) / slot));
    const last = Math.min(STRIP_MINUTES - 1, Math.max(first, Math.ceil((p.to - start) / slot) - 1));
    for (let i = first; i <= last; i++) {
      const was = worst[i];
      if (was === undefined || WORST.indexOf(p.state) < WORST.indexOf(was)) worst[i] = p.state;
    }
  }
  // A path per state, a bar per minute in it: a fifth of the bytes of a rect per bar.
  const bars = WORST.map((state) => {
    const d = worst.flatMap((w, i) => (w === state ? [`M${i * 10} 0h9v24h-9z`] : [])).join('');
    return d ? `<path class="${state}" d="${d}"></path>` : '';
  });
  const words =
    WORST.filter((w) => time.has(w))
      .map((w) => `${w} ${duration(time.get(w) as number)}`)
      .join(', ') || 'not seen yet';
  return `<svg class="strip" viewBox="0 0 600 24" preserveAspectRatio="none" role="img" aria-label="last hour: ${words}"><title>last hour: ${words}</title><rect class="none" width="600" height="24"></rect>${bars.join('')}</svg><small class="strip-words">${words}</small>`;
}

function row(
  b: WatchedBackend,
  lastEvent: WatchEvent | undefined,
  spans: readonly HistorySpan[],
  history: WatchHistory,
  now: number,
): string {
  const state = displayState(b);
  const memory = b.rpc?.devices ?? [];
  const devices = memory.map((d) => deviceMemory(d, memory.length > 1)).join('');
  const sources = b.sources
    .map((s) => `${escapeHtml(s)}${b.namedAt?.[s] ? ` <small>(${escapeHtml(ago(b.namedAt[s], now))})</small>` : ''}`)
    .join(', ');
  const reported = b.reportedBy?.length ? `<br><small>reported by ${escapeHtml(b.reportedBy.join(', '))}</small>` : '';
  // The reason is the State's, said when it is not plainly up (then the badge's title says
  // what the last check saw); the last change says only what and when.
  const why = escapeHtml(b.leftOut ?? b.lastCheck?.saw ?? '');
  const label = state.replace('-', ' ').toUpperCase();
  const badge =
    state === 'up'
      ? `<span class="badge up" title="${why}">${label}</span>`
      : `<span class="badge ${state}">${label}</span> <small class="reason">${why}</small>`;
  const change = lastEvent ? `${escapeHtml(lastEvent.type)} ${escapeHtml(ago(lastEvent.time, now))}` : '';
  return `<tr data-state="${state}">
<th scope="row">${escapeHtml(formatHostPort(b))}</th>
<td class="state" data-label="State">${badge}</td>
<td class="memory" data-label="Free memory">${devices || '<small>unknown</small>'}</td>
<td class="history" data-label="Last hour">${historyStrip(spans, history)}</td>
<td data-label="Protocol">${escapeHtml(b.rpc?.protocol ?? '')}</td>
<td class="sources" data-label="Sources">${sources}${reported}</td>
<td data-label="RTT">${b.rttMs === undefined ? '' : `${escapeHtml(b.rttMs.toFixed(1))} ms`}</td>
<td data-label="Flaps">${b.flaps}</td>
<td data-label="Last change">${change}</td>
</tr>`;
}

const COLUMNS = ['Backend', 'State', 'Free memory', 'Last hour', 'Protocol', 'Sources', 'RTT', 'Flaps', 'Last change'];

/** The table body: one row per backend, or a row saying there is none yet. */
export function backendsFragment(
  snapshot: WatchSnapshot,
  lastEvents: Map<number, WatchEvent>,
  history: WatchHistory,
): string {
  const now = Date.now();
  if (snapshot.backends.length === 0) {
    return `<tr><td colspan="${COLUMNS.length}">${snapshot.watcher.ready ? 'No live backend found.' : 'Looking for backends…'}</td></tr>`;
  }
  const spans = new Map(history.backends.map((h) => [h.backend, h.spans]));
  return snapshot.backends
    .map((b) =>
      row(
        b,
        b.lastEventId === undefined ? undefined : lastEvents.get(b.lastEventId),
        spans.get(formatHostPort(b)) ?? [],
        history,
        now,
      ),
    )
    .join('\n');
}

/** The cluster at a glance: servers up, and the usable set's devices and memory (what a model can use). */
export function totalsFragment(snapshot: WatchSnapshot): string {
  const up = snapshot.backends.filter((b) => b.state === 'up').length;
  const usable = snapshot.backends.filter((b) => b.usable);
  const devices = usable.flatMap((b) => b.rpc?.devices ?? []);
  const free = devices.reduce((sum, d) => sum + d.freeBytes, 0);
  const total = devices.reduce((sum, d) => sum + d.totalBytes, 0);
  const figure = (term: string, value: string, detail: string) =>
    `<div><dt>${term}</dt><dd><strong>${value}</strong> ${detail}</dd></div>`;
  return `<dl class="totals">
${figure('Servers up', escapeHtml(up), `of ${escapeHtml(snapshot.backends.length)}, ${escapeHtml(usable.length)} usable`)}
${figure('Devices', escapeHtml(devices.length), 'on the usable servers')}
${figure('Free memory', escapeHtml(gib(free)), `free of ${escapeHtml(gib(total))} on the usable servers`)}
</dl>`;
}

/** The chart's shortest span: a watcher just started still draws a line, not a point. */
const CHART_MIN_MS = 10_000;

/**
 * The usable set's free memory since the history begins (an hour at most): its area, and its
 * total dashed above it (a server lost lowers both, a model loaded only the free), scaled to
 * the largest total.
 */
export function memoryFragment(history: WatchHistory): string {
  const samples = history.memory;
  const top = Math.max(0, ...samples.map((m) => m.totalBytes));
  const first = samples[0];
  const last = samples.at(-1);
  if (!first || !last || top === 0) return '<p><small>No usable server with known memory yet.</small></p>';
  const now = Date.parse(history.now);
  const from = Math.max(now - history.windowMs, Math.min(Date.parse(first.at), now - CHART_MIN_MS));
  const width = (now - from) / 1000;
  const x = (iso: string) => ((Date.parse(iso) - from) / 1000).toFixed(1);
  const y = (bytes: number) => (100 - (bytes / top) * 100).toFixed(2);
  // Each sample holds until the next one, the last until now: steps, as the memory moved.
  const line = (bytes: (m: (typeof samples)[number]) => number) =>
    samples
      .map(
        (m, i) =>
          `${x(m.at)},${y(bytes(m))} ${i + 1 < samples.length ? x((samples[i + 1] as typeof m).at) : width.toFixed(1)},${y(bytes(m))}`,
      )
      .join(' ');
  const free = line((m) => m.freeBytes);
  const lowest = Math.min(...samples.map((m) => m.freeBytes));
  const words = `${gib(last.freeBytes)} free of ${gib(last.totalBytes)} now, lowest ${gib(lowest)}`;
  return `<figure class="chart">
<figcaption>Free memory of the usable set: <strong>${escapeHtml(words)}</strong> <small>(scale 0 to ${escapeHtml(gib(top))}; dashed: the total)</small></figcaption>
<svg viewBox="0 0 ${width.toFixed(1)} 100" preserveAspectRatio="none" role="img" aria-label="free memory of the usable set: ${escapeHtml(words)}"><polygon class="area" points="${x(first.at)},100 ${free} ${width.toFixed(1)},100"></polygon><polyline class="total" vector-effect="non-scaling-stroke" points="${line((m) => m.totalBytes)}"></polyline><polyline class="line" vector-effect="non-scaling-stroke" points="${free}"></polyline></svg>
<div class="axis"><small>${escapeHtml(duration(now - from))} ago</small><small>now</small></div>
</figure>`;
}

/** What the last resolve named but the watcher does not follow, folded, each with why. */
export function droppedFragment(dropped: readonly DroppedServer[] | undefined): string {
  if (!dropped?.length) return '';
  const items = dropped
    .map(
      (d) =>
        `<li><code>${escapeHtml(d.port === 0 ? d.host : formatHostPort(d))}</code> <small>(${escapeHtml(d.source)})</small>: ${escapeHtml(d.reason)}</li>`,
    )
    .join('\n');
  return `<details><summary>${dropped.length} server${dropped.length === 1 ? '' : 's'} named but not followed</summary>
<ul>
${items}
</ul>
</details>`;
}

export function summaryFragment(snapshot: WatchSnapshot): string {
  const counts = { up: 0, busy: 0, down: 0, 'left-out': 0 };
  for (const b of snapshot.backends) counts[displayState(b)] += 1;
  const leftOut = counts['left-out'] > 0 ? `, ${counts['left-out']} left out for their protocol` : '';
  return `${counts.up} up, ${counts.busy} busy, ${counts.down} down${leftOut} · usable: <code>${escapeHtml(snapshot.rpc || 'none')}</code>`;
}

export function eventsFragment(events: readonly WatchEvent[]): string {
  if (events.length === 0) return '<li>No events yet.</li>';
  return [...events]
    .reverse()
    .map(
      (e) =>
        `<li><time datetime="${escapeHtml(e.time)}">${escapeHtml(e.time.slice(11, 19))}</time> <span class="badge ${escapeHtml(e.type === 'down' || e.type === 'removed' ? 'down' : 'up')}">${escapeHtml(e.type)}</span> ${escapeHtml(formatHostPort(e.backend))}: ${escapeHtml(e.cause.saw)}</li>`,
    )
    .join('\n');
}

export function scannersFragment(scanners: readonly ScannerInfo[]): string {
  if (scanners.length === 0) return '<li>This watcher alone (no shared Redis).</li>';
  return scanners
    .map(
      (s) =>
        `<li><code>${escapeHtml(s.id)}</code>, version ${escapeHtml(s.version)}, scanning ${escapeHtml(s.scanning.join(', ') || 'nothing')}; heartbeat ${escapeHtml(s.heartbeatAt)}</li>`,
    )
    .join('\n');
}

/** A coordinator state's badge colour: the backends' (the text says the state). */
const COORDINATOR_BADGE: Record<CoordinatorStatus['state'], string> = {
  ready: 'up',
  starting: 'busy',
  restarting: 'busy',
  waiting: 'busy',
  'crash-loop': 'down',
  stopped: 'left-out',
};

/** `run`'s coordinator: its state, pid, --rpc list, time to ready, restarts, last reason. */
export function coordinatorFragment(status: CoordinatorStatus | undefined): string {
  if (!status) return '<p>No coordinator is supervised here.</p>';
  const now = Date.now();
  const item = (term: string, value: string) => `<dt>${term}</dt><dd>${value}</dd>`;
  return `<dl>
${item('State', `<span class="badge ${COORDINATOR_BADGE[status.state]}">${escapeHtml(status.state.replace('-', ' ').toUpperCase())}</span> <small>since ${escapeHtml(ago(status.since, now))}</small>`)}
${item('PID', status.pid === undefined ? '<small>none running</small>' : escapeHtml(status.pid))}
${item('Servers', status.servers?.length ? `<code>${escapeHtml(status.servers.join(','))}</code>` : '<small>none yet</small>')}
${item('Time to ready', status.lastMsToReady === undefined ? '<small>not ready yet</small>' : `${escapeHtml((status.lastMsToReady / 1000).toFixed(1))} s`)}
${item('Restarts', escapeHtml(status.restarts))}
${item('Reason', status.reason === undefined ? '' : escapeHtml(status.reason))}
</dl>`;
}

const STYLE = `
:root { color-scheme: light dark; --up: #1a7f37; --busy: #9a6700; --down: #cf222e; --left-out: #6e7781; font-family: system-ui, sans-serif; }
body { margin: 0 auto; padding: 1rem; max-width: 110rem; font-size: clamp(0.9rem, 0.8rem + 0.4vw, 1.3rem); overflow-wrap: break-word; }
h1 { font-size: 1.4em; margin: 0 0 0.3em; } h2 { font-size: 1.1em; margin: 1.2em 0 0.4em; }
code { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 0.4em 0.6em; border-bottom: 1px solid color-mix(in srgb, currentColor 20%, transparent); }
caption { text-align: left; font-weight: 600; padding-bottom: 0.4em; }
.badge { display: inline-block; padding: 0.05em 0.5em; border-radius: 0.3em; color: #fff; font-weight: 600; font-size: 0.85em; }
.badge.up { background: var(--up); } .badge.busy { background: var(--busy); } .badge.down { background: var(--down); } .badge.left-out { background: var(--left-out); }
.reason { display: block; }
tr[data-state="down"] th { text-decoration: line-through; }
.device + .device { margin-top: 0.2em; } td.state { min-width: 7em; } td.memory { min-width: 13em; }
meter { display: block; width: 100%; max-width: 12em; } .free, .amount { white-space: nowrap; } small { opacity: 0.75; }
.strip { display: block; width: 100%; min-width: 6em; height: 1.4em; }
.strip .none { fill: color-mix(in srgb, currentColor 10%, transparent); }
.strip .up, .swatch.up { fill: var(--up); background: var(--up); } .strip .busy, .swatch.busy { fill: var(--busy); background: var(--busy); } .strip .down, .swatch.down { fill: var(--down); background: var(--down); }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 0.15em; vertical-align: baseline; }
.legend { font-size: 0.85em; }
.totals { display: flex; flex-wrap: wrap; gap: 0.5em 2.5em; margin: 0.8em 0; }
.totals dt { font-size: 0.85em; opacity: 0.75; } .totals dd { margin: 0; } .totals strong { font-size: 1.8em; }
.chart { margin: 0 0 1em; } .chart svg { display: block; width: 100%; height: 4em; border-bottom: 1px solid color-mix(in srgb, currentColor 30%, transparent); }
.chart .area { fill: color-mix(in srgb, var(--up) 25%, transparent); } .chart .line { fill: none; stroke: var(--up); stroke-width: 2; }
.chart .total { fill: none; stroke: currentColor; stroke-opacity: 0.5; stroke-width: 1; stroke-dasharray: 4 3; }
.chart figcaption { margin-bottom: 0.3em; } .axis { display: flex; justify-content: space-between; }
ol { padding-left: 1.2em; max-height: 30em; overflow-y: auto; }
#live { font-size: 0.85em; opacity: 0.75; }
#coordinator dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.3em 1em; } #coordinator dt { font-weight: 600; } #coordinator dd { margin: 0; }
/* Up to a small laptop: a card per backend, each value under its column's name. */
@media (max-width: 72rem) {
  body { padding: 0.6rem; }
  table, caption, tbody, tr, th, td { display: block; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); }
  tbody tr { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); margin-bottom: 0.8em; padding: 0.4em; border: 1px solid color-mix(in srgb, currentColor 25%, transparent); border-radius: 0.5em; }
  tbody th, tbody td { border: 0; padding: 0.25em 0.4em; }
  tbody th, td.state, td.memory, td.history { grid-column: 1 / -1; min-width: 0; }
  tbody th { font-size: 1.1em; }
  td[data-label]::before { content: attr(data-label); display: block; font-size: 0.75em; font-weight: 600; opacity: 0.7; }
  td[data-label]:empty { display: none; }
}
/* A tablet: the card's pictures side by side, the small values in a row under them. */
@media (min-width: 40rem) and (max-width: 72rem) {
  tbody tr { grid-template-columns: repeat(6, minmax(0, 1fr)); }
  td.state, td.memory, td.history, td.sources { grid-column: span 2; }
}
/* A wall screen, read from across the room: the state and the free memory large. */
@media (min-width: 1800px) {
  body { max-width: none; font-size: calc(0.4rem + 0.9vw); }
  tbody .badge { font-size: 1.3em; } .free { font-size: 1.4em; } .totals strong { font-size: 2.6em; }
  .strip { height: 2em; } .chart svg { height: 8em; } meter { height: 1.2em; } td.memory { min-width: 19em; }
}
`;

const SCRIPT = `
(() => {
  const get = (path, id) => fetch(path, { credentials: 'same-origin', cache: 'no-store' })
    .then((r) => (r.ok ? r.text() : Promise.reject(new Error(String(r.status)))))
    .then((html) => {
      // A list someone unfolded stays unfolded.
      const part = document.getElementById(id);
      const open = part.querySelector('details')?.open;
      part.innerHTML = html;
      if (open) part.querySelector('details')?.setAttribute('open', '');
    });
  const parts = ['backends', 'summary', 'totals', 'memory', 'dropped', 'events', 'coordinator'];
  // Events come in bursts: one refresh at a time, and one more if any came meanwhile.
  let running, again = false;
  const refresh = () => {
    if (running) { again = true; return; }
    running = Promise.all(parts.filter((id) => document.getElementById(id)).map((id) => get('/fragments/' + id, id)))
      .catch(() => {})
      .then(() => { running = undefined; if (again) { again = false; refresh(); } });
  };
  const live = document.getElementById('live');
  let poll;
  const startPolling = () => { if (!poll) { poll = setInterval(refresh, 3000); live.textContent = 'polling every 3 s'; } };
  if ('EventSource' in window) {
    const source = new EventSource('/api/events');
    source.onopen = () => { if (poll) { clearInterval(poll); poll = undefined; } live.textContent = 'live'; refresh(); };
    source.onmessage = refresh;
    source.addEventListener('reset', refresh);
    source.onerror = startPolling;
  } else startPolling();
  // The last hour moves with no event: the pictures and the scanners every 10 s.
  setInterval(() => { refresh(); get('/fragments/scanners', 'scanners').catch(() => {}); }, 10000);
})();
`;

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The policy every response carries: only this page's own script and style, only this server. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function renderPage(
  snapshot: WatchSnapshot,
  lastEvents: Map<number, WatchEvent>,
  recent: readonly WatchEvent[],
  scanners: readonly ScannerInfo[],
  history: WatchHistory,
): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scan-backends: RPC backends</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>scan-backends</h1>
<p id="summary" aria-live="polite">${summaryFragment(snapshot)}</p>
<p id="live">${snapshot.watcher.ready ? 'as of the page load' : 'first resolve running'}</p>
</header>
<main>
${
  snapshot.coordinator
    ? `<h2>Coordinator</h2>
<div id="coordinator" aria-live="polite">
${coordinatorFragment(snapshot.coordinator)}
</div>
`
    : ''
}<section id="totals" aria-label="Cluster totals">
${totalsFragment(snapshot)}
</section>
<div id="memory">
${memoryFragment(history)}
</div>
<p class="legend" id="legend">Bars show <strong>free</strong> device memory, what a model can still use (red under 10 %).
Last hour, a bar per minute: <span class="swatch up"></span> up, <span class="swatch busy"></span> busy (a client holds it), <span class="swatch down"></span> down at least once.</p>
<div class="scroll">
<table>
<caption>RPC backends (watcher <code>${escapeHtml(snapshot.watcher.id)}</code>)</caption>
<thead><tr>${COLUMNS.map((c) => `<th scope="col">${c}</th>`).join('')}</tr></thead>
<tbody id="backends">
${backendsFragment(snapshot, lastEvents, history)}
</tbody>
</table>
</div>
<div id="dropped">
${droppedFragment(snapshot.dropped)}
</div>
<h2>Events</h2>
<ol id="events" reversed aria-live="polite">
${eventsFragment(recent)}
</ol>
<h2>Scanners</h2>
<ul id="scanners">
${scannersFragment(scanners)}
</ul>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
