/* ombootd live cluster dashboard: browser side (vanilla ES2020, no build step).
 * Follows /api/events (SSE) and renders nodes, boot progress, jobs, migrations and the load
 * history; shows control elements only after the master accepted a pasted token. */
'use strict';

// ---------- constants ----------

const STUCK_AFTER_S = 120;     // a boot row not done and older than this is "stuck"
const MOVES_SHOWN = 30;
const ARROW_MS = 6000;         // how long a migration arrow stays on screen
const ARROW_RECENT_MS = 30000; // after a reconnect, only animate migrations this recent
const STALL_MS = 45000;        // samples come every 5 s: this much silence means a dead stream
const RETRY_MS = 3000;
const BAR_FULL = 2.0;          // load bar is full at 2.0, tick at 1.0 (as `omctl mon`)
const TOKEN_KEY = 'ombootd.dashboard.token';
// Okabe-Ito, black swapped for light grey on the dark background; dashes multiply the choices.
const LINE_COLOURS = ['#56B4E9', '#E69F00', '#009E73', '#F0E442', '#0072B2', '#D55E00', '#CC79A7', '#BBBBBB'];
const LINE_DASHES = [[], [6, 3], [2, 2]];
const byName = new Intl.Collator(undefined, { numeric: true }).compare;

// ---------- state ----------

const st = {
  snap: null,            // last snapshot
  receivedAt: 0,         // Date.now() when it came: lets "ago" figures keep counting
  skewMs: 0,             // server clock minus ours
  history: { step_ms: 5000, keep_ms: 3600000, samples: [] },
  seenMoves: null,       // keys of migrations already shown; null before the first snapshot
  token: null,           // set only once the master accepted it
  highlight: null,       // node highlighted in the history plot
  connection: 'connecting',
  lostSince: 0,
  needHistory: false,    // reload /api/history on the next snapshot (after a reconnect)
};
window.omDashboard = { snapshots: 0 };

// ---------- small helpers ----------

const $ = (sel) => document.querySelector(sel);

/** Builds an element: el('td', {class: 'x', 'data-y': 1}, 'text', child). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** Sets text only when it changed, so a 1/s refresh does not churn the DOM. */
function setText(node, text) {
  const t = String(text);
  if (node.textContent !== t) node.textContent = t;
}

/** Puts child at position i of parent without moving it if already there (keeps focus). */
function placeAt(parent, child, i) {
  if (parent.children[i] !== child) parent.insertBefore(child, parent.children[i] || null);
}

/**
 * Keyed update of a list of rows: rows keep their identity (and any half-typed input or open
 * select) across snapshots; rows of vanished keys are removed, so nothing piles up over hours.
 */
function syncRows(parent, items, keyOf, create, update) {
  const old = parent._rows || new Map();
  const next = new Map();
  let i = 0;
  for (const item of items) {
    const key = keyOf(item);
    if (next.has(key)) continue;
    const row = old.get(key) || create(item);
    update(row, item);
    next.set(key, row);
    placeAt(parent, row, i++);
  }
  for (const [key, row] of old) if (!next.has(key)) row.remove();
  parent._rows = next;
}

const pad2 = (n) => String(n).padStart(2, '0');
function clock(ms) {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function ago(s) {
  if (s < 90) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

const bytes = (n) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`);

/** "312 / 488 MiB" or "1.2 / 7.5 GiB": one unit for both, chosen by the total. */
function memory(used, total) {
  const [div, unit, digits] = total >= 2 ** 30 ? [2 ** 30, 'GiB', 1] : [2 ** 20, 'MiB', 0];
  return `${(used / div).toFixed(digits)} / ${(total / div).toFixed(digits)} ${unit}`;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Seconds since the snapshot came: "ago" figures keep counting between snapshots. */
const sinceSnap = () => (Date.now() - st.receivedAt) / 1000;
const serverNow = () => Date.now() + st.skewMs;

function loadOf(node) {
  const l = node.load;
  return l && typeof l.load === 'number' && Number.isFinite(l.load) ? l.load : null;
}

/** The colour class of a node: what the legend explains (never the only carrier: text too). */
function levelOf(node) {
  if (node.state === 'dead') return 'dead';
  if (node.state === 'off') return 'off';
  const load = loadOf(node);
  if (load === null) return 'none';
  if (load < 0.25) return 'idle';
  return load <= 1.0 ? 'busy' : 'over';
}

function badgeText(node) {
  if (node.state === 'booting') return `booting: ${node.stage ? node.stage.stage : '…'}`;
  return node.state;
}

/** Nodes as cards: every snapshot node but the master, in natural name order. */
function clusterNodes(s) {
  const master = s.master && s.master.name;
  return (s.nodes || []).filter((n) => n.name !== master).sort((a, b) => byName(a.name, b.name));
}

// ---------- connection ----------

let source = null;
let stallTimer = 0;
let retryTimer = 0;

function connect() {
  clearTimeout(retryTimer);
  retryTimer = 0;
  if (source) source.close();
  source = new EventSource('/api/events');
  source.addEventListener('snapshot', (e) => handle(e, onSnapshot));
  source.addEventListener('sample', (e) => handle(e, onSample));
  source.onopen = armStallTimer;
  source.onerror = () => {
    markLost();
    // On an HTTP error (a proxy's 502, say) EventSource gives up for good: retry ourselves.
    if (source.readyState === EventSource.CLOSED && !retryTimer) retryTimer = setTimeout(connect, RETRY_MS);
  };
}

/** One bad event must not stop the page: log it and go on. */
function handle(event, fn) {
  armStallTimer();
  try {
    fn(JSON.parse(event.data));
  } catch (err) {
    console.error(`ombootd dashboard: bad ${event.type} event`, err);
  }
}

/** A half-open TCP connection (master unplugged) never errors: notice the silence instead. */
function armStallTimer() {
  clearTimeout(stallTimer);
  stallTimer = setTimeout(() => {
    markLost();
    connect();
  }, STALL_MS);
}

function setConnection(c) {
  st.connection = c;
  document.body.dataset.connection = c;
  setText($('#conn-text'), { live: 'live', lost: 'lost', connecting: 'connecting…' }[c]);
}

function markLost() {
  if (st.connection === 'lost') return;
  st.lostSince = Date.now();
  st.needHistory = true;
  setConnection('lost');
  const banner = $('#banner');
  banner.textContent = `Master unreachable since ${clock(st.lostSince)} — retrying…`;
  banner.hidden = false;
}

function markLive() {
  if (st.connection === 'live') return;
  setConnection('live');
  $('#banner').hidden = true;
  if (st.needHistory) {
    st.needHistory = false;
    loadHistory();
  }
}

async function loadHistory() {
  try {
    const r = await fetch('/api/history', { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const h = await r.json();
    st.history = {
      step_ms: h.step_ms || 5000,
      keep_ms: h.keep_ms || 3600000,
      samples: Array.isArray(h.samples) ? h.samples : [],
    };
    historyChanged();
  } catch (err) {
    // Not fatal: the plot fills from live samples; a later reconnect tries again.
    console.warn('ombootd dashboard: history not loaded', err);
    st.needHistory = st.connection !== 'live';
  }
}

// ---------- incoming data ----------

function onSnapshot(s) {
  st.snap = s;
  st.receivedAt = Date.now();
  if (typeof s.now_ms === 'number') st.skewMs = s.now_ms - st.receivedAt;
  window.omDashboard.snapshots += 1;
  markLive();
  renderAll();
}

function onSample(sample) {
  if (!sample || typeof sample.t_ms !== 'number') return;
  const h = st.history;
  const last = h.samples[h.samples.length - 1];
  if (last && sample.t_ms <= last.t_ms) return; // already in the history we loaded
  h.samples.push(sample);
  const drop = h.samples.findIndex((x) => x.t_ms >= sample.t_ms - h.keep_ms);
  if (drop > 0) h.samples.splice(0, drop);
  historyChanged();
}

/** Each view on its own: a surprise in one part of a snapshot must not blank the others. */
function renderAll() {
  if (!st.snap) return;
  for (const view of [renderHeader, renderNodes, renderBoot, renderPending, renderJobs, renderMoves]) {
    try {
      view(st.snap);
    } catch (err) {
      console.error(`ombootd dashboard: ${view.name} failed`, err);
    }
  }
}

// ---------- header ----------

function renderHeader(s) {
  const m = s.master || {};
  setText($('#master'), `master ${m.name || '?'} · ${m.ip || '?'}${m.interface ? ` on ${m.interface}` : ''}`);
  const nodes = clusterNodes(s);
  const count = {};
  for (const n of nodes) count[n.state] = (count[n.state] || 0) + 1;
  const parts = ['up', 'suspect', 'booting', 'dead', 'off'].filter((k) => count[k]).map((k) => `${count[k]} ${k}`);
  const loads = nodes.map(loadOf).filter((v) => v !== null);
  const avg = loads.length ? loads.reduce((a, b) => a + b, 0) / loads.length : null;
  parts.push(avg === null ? 'no load' : `avg load ${avg.toFixed(2)}`);
  if (Array.isArray(s.jobs)) parts.push(plural(s.jobs.length, 'job'));
  setText($('#summary'), `${plural(nodes.length, 'node')}: ${parts.join(' · ')}`);
  $('#summary').title = `snapshot of ${clock(s.now_ms || Date.now())}`;
}

// ---------- node cards ----------

const cards = new Map(); // name -> { root, refs }

const CARD_HTML = `
  <div class="row head"><span class="name"></span><span class="badge"></span></div>
  <div class="row sub"><span class="ip"></span><span class="cpu" title="CPUs × speed (1000 = one standard CPU)"></span></div>
  <div class="row load"><div class="load-bar"><div class="load-fill"></div><i class="load-tick"></i></div><span class="load-num"></span></div>
  <div class="row sub"><span class="mem" title="memory used / total"></span><span class="work"></span></div>
  <svg class="spark" viewBox="0 0 100 20" preserveAspectRatio="none" aria-hidden="true">
    <line class="spark-one" x1="0" x2="100" y1="10" y2="10"></line><path></path></svg>
  <div class="row foot"><span class="flags"></span><span class="node-ctl"></span></div>`;

function makeCard(name) {
  const root = el('div', { class: 'node', 'data-node': name });
  root.innerHTML = CARD_HTML; // static markup, no data in it
  const q = (sel) => root.querySelector(sel);
  const card = {
    root, name: q('.name'), badge: q('.badge'), ip: q('.ip'), cpu: q('.cpu'), fill: q('.load-fill'),
    num: q('.load-num'), mem: q('.mem'), work: q('.work'), spark: q('.spark path'), flags: q('.flags'),
    ctl: q('.node-ctl'), foot: q('.foot'), flagKey: null, ctlKey: null,
  };
  setText(card.name, name);
  card.name.title = name;
  return card;
}

function renderNodes(s) {
  const grid = $('#nodes');
  const nodes = clusterNodes(s);
  const keep = new Set();
  nodes.forEach((n, i) => {
    let card = cards.get(n.name);
    if (!card) {
      card = makeCard(n.name);
      cards.set(n.name, card);
      drawSpark(card, n.name);
    }
    updateCard(card, n);
    placeAt(grid, card.root, i);
    keep.add(n.name);
  });
  for (const [name, card] of cards) {
    if (!keep.has(name)) {
      card.root.remove();
      cards.delete(name);
    }
  }
  $('#nodes-empty').hidden = nodes.length > 0;
  syncLegend(nodes.map((n) => n.name));
}

function updateCard(c, n) {
  const level = levelOf(n);
  const load = loadOf(n);
  const l = n.load || {};
  c.root.dataset.state = n.state;
  c.root.dataset.ip = n.ip || '';
  c.root.dataset.level = level;
  setText(c.ip, n.ip || 'no IP');
  setText(c.badge, badgeText(n));
  c.badge.className = `badge ${n.state}`;
  c.badge.title = n.stage ? `last boot stage: ${n.stage.label}, ${ago(n.stage.ago_s)}` : n.state;

  c.fill.dataset.load = load === null ? '' : String(load);
  c.fill.style.width = load === null ? '0' : `${Math.min(load / BAR_FULL, 1) * 100}%`;
  c.fill.style.minWidth = load !== null ? '2px' : '0';
  const word = { idle: 'idle', busy: 'busy', over: 'over', dead: 'dead', off: '', none: '' }[level];
  setText(c.num, load === null ? (level === 'dead' ? 'dead' : '—') : `${load.toFixed(2)} ${word}`);
  c.root.title = n.load_age_ms == null ? '' : `load figures ${(n.load_age_ms / 1000).toFixed(1)} s old`;

  setText(c.cpu, n.load ? `${l.cpus}×${l.speed}` : '');
  setText(c.mem, n.load && l.mem_total ? memory(l.mem_total - (l.mem_free || 0), l.mem_total) : '');
  const guests = n.load ? ` · ${plural(l.guests || 0, 'guest')}` : '';
  setText(c.work, `${plural(n.jobs || 0, 'job')}${guests}`);

  updateFlags(c, n);
}

/** Flag tags and (with a token) the toggle buttons; rebuilt only when they change. */
function updateFlags(c, n) {
  const f = n.flags || {};
  const set = ['stay', 'lstay', 'block', 'quiet'].filter((k) => f[k]);
  const flagKey = set.join(',');
  if (flagKey !== c.flagKey) {
    c.flagKey = flagKey;
    c.flags.replaceChildren(...set.map((k) => el('span', { class: `tag ${k}`, title: FLAG_HELP[k] }, k)));
  }
  const ctlKey = st.token ? `${f.stay ? 1 : 0}${f.block ? 1 : 0}` : '';
  if (ctlKey !== c.ctlKey) {
    c.ctlKey = ctlKey;
    c.ctl.replaceChildren(...(st.token ? [
      nodeButton(n.name, f.stay ? 'nostay' : 'stay'),
      nodeButton(n.name, f.block ? 'noblock' : 'block'),
    ] : []));
  }
  c.foot.hidden = !set.length && !st.token;
}

const FLAG_HELP = {
  stay: 'stay: local jobs are kept here',
  lstay: 'lstay: local jobs stay, guests may leave',
  block: 'block: no guest jobs accepted',
  quiet: 'quiet: not sending load figures',
};

function nodeButton(node, action) {
  return el('button', { type: 'button', class: 'control small', 'data-action': 'node', 'data-node': node,
    'data-value': action, title: `${action} on ${node}` }, action);
}

// ---------- boot table and pending MACs ----------

function bootAge(item) {
  return (item.ago_s || 0) + sinceSnap();
}

function renderBoot(s) {
  const rows = s.boot || [];
  const stuck = rows.filter((r) => !r.done && bootAge(r) > STUCK_AFTER_S).length;
  setText($('#boot-count'), `${plural(rows.length, 'MAC')}${stuck ? ` · ${stuck} stuck` : ''}`);
  syncRows($('#boot tbody'), rows, (r) => r.mac, createBootRow, updateBootRow);
}

function createBootRow(r) {
  const tr = el('tr', { 'data-mac': r.mac });
  for (const cls of ['name', 'mono', 'mono', 'stage', 'age']) tr.append(el('td', { class: cls }));
  // The stage cell also says how the boot is going, first so an ellipsis never hides it.
  tr.children[3].append(el('span', { class: 'status' }), el('span'));
  return tr;
}

function updateBootRow(tr, r) {
  tr._item = r;
  const td = tr.children;
  setText(td[0], r.name || 'unknown');
  td[0].classList.toggle('unknown', !r.name);
  setText(td[1], r.mac);
  setText(td[2], r.ip || '—');
  setText(td[3].lastChild, r.label || r.stage || '?');
  td[3].title = r.stage || '';
  refreshBootAge(tr);
}

/** Called for each snapshot and every second: ages grow, rows can become stuck. */
function refreshBootAge(tr) {
  const r = tr._item;
  const age = bootAge(r);
  const stuck = !r.done && age > STUCK_AFTER_S;
  setText(tr.children[4], ago(age));
  setText(tr.children[3].firstChild, r.done ? '✓ ' : stuck ? '⚠ stuck: ' : '');
  tr.classList.toggle('stuck', stuck);
  tr.classList.toggle('done', !!r.done);
}

function renderPending(s) {
  const rows = s.pending || [];
  $('#pending-empty').hidden = rows.length > 0;
  setText($('#pending-count'), rows.length ? `(${rows.length})` : '');
  syncRows($('#pending tbody'), rows, (p) => p.mac, createPendingRow, (tr, p) => {
    tr._item = p;
    refreshPendingAge(tr);
  });
}

function createPendingRow(p) {
  const tr = el('tr', { 'data-pending': p.mac },
    el('td', {}, el('span', { class: 'mono' }, p.mac), el('br'), el('small', { class: 'age' })));
  if (st.token) {
    const form = el('form', { class: 'control approve', 'data-mac': p.mac, autocomplete: 'off' },
      el('input', { class: 'control', name: 'name', placeholder: 'name', required: true, size: 8,
        'aria-label': `name for ${p.mac}` }),
      el('input', { class: 'control', name: 'ip', placeholder: 'ip (optional)', size: 10,
        'aria-label': `IP for ${p.mac} (optional)` }),
      el('button', { class: 'control small', type: 'submit' }, 'Approve'));
    tr.append(el('td', {}, form));
  }
  return tr;
}

function refreshPendingAge(tr) {
  setText(tr.querySelector('.age'), `waiting, first seen ${ago(bootAge(tr._item))}`);
}

function tick() {
  for (const tr of $('#boot tbody').children) if (tr._item) refreshBootAge(tr);
  for (const tr of $('#pending tbody').children) if (tr._item) refreshPendingAge(tr);
}

// ---------- jobs ----------

function renderJobs(s) {
  const tbody = $('#jobs tbody');
  const waiting = !Array.isArray(s.jobs);
  const wait = $('#jobs-wait');
  setText(wait, waiting ? 'asking the nodes…' : 'no jobs running');
  wait.hidden = !waiting && s.jobs.length > 0;
  $('#jobs').hidden = waiting;
  if (waiting) {
    setText($('#jobs-count'), '');
    return;
  }
  const away = s.jobs.filter((j) => j.node !== j.home).length;
  setText($('#jobs-count'), `${s.jobs.length}${away ? ` · ${away} away from home` : ''}`);
  const up = clusterNodes(s).filter((n) => n.state === 'up').map((n) => n.name);
  syncRows(tbody, s.jobs, (j) => j.id, createJobRow, (tr, j) => updateJobRow(tr, j, up));
}

function createJobRow(j) {
  const tr = el('tr', { 'data-job': j.id });
  for (const cls of ['mono', '', 'cmd', '', 'where', 'state', 'num', 'ctl-col']) tr.append(el('td', { class: cls }));
  if (st.token) {
    tr.children[7].append(
      el('select', { class: 'control', 'aria-label': `move ${j.id} to` }),
      el('button', { type: 'button', class: 'control small', 'data-action': 'move', 'data-job': j.id }, 'Move'));
  }
  return tr;
}

function updateJobRow(tr, j, upNodes) {
  const td = tr.children;
  setText(td[0], j.id);
  setText(td[1], j.user || j.uid);
  setText(td[2], j.command);
  td[2].title = j.command + (j.unmovable ? `\nunmovable: ${j.unmovable}` : '');
  setText(td[3], j.home);
  const away = j.node !== j.home;
  setText(td[4], away ? `${j.node} ↗` : j.node); // arrow: not colour alone
  td[4].title = away ? `running away from its home ${j.home}` : 'at home';
  tr.classList.toggle('away', away);
  setText(td[5], j.state + (j.unmovable ? ' ⊘' : ''));
  td[5].title = j.unmovable ? `unmovable: ${j.unmovable}` : '';
  td[5].dataset.state = j.state;
  setText(td[6], j.migrations);
  const select = td[7].querySelector('select');
  if (select) fillMoveTargets(select, j, upNodes);
}

/** "Move to" choices: the other up nodes plus home; rebuilt only when they change. */
function fillMoveTargets(select, j, upNodes) {
  const targets = upNodes.filter((n) => n !== j.node && n !== j.home);
  if (j.node !== j.home) targets.unshift('home');
  const key = targets.join(',');
  if (select._key === key) return;
  select._key = key;
  const keep = select.value;
  const options = targets.map((t) => el('option', { value: t }, t === 'home' ? `home (${j.home})` : t));
  select.replaceChildren(...(options.length ? options : [el('option', { value: '' }, 'no other node up')]));
  if (targets.includes(keep)) select.value = keep;
  select.disabled = targets.length === 0;
  select.nextElementSibling.disabled = targets.length === 0;
}

// ---------- migrations ----------

const moveKey = (m) => `${m.job}|${m.at_ms}|${m.from}|${m.to}`;

function renderMoves(s) {
  const moves = s.moves || [];
  const keys = new Set(moves.map(moveKey));
  const fresh = st.seenMoves === null ? [] : moves.filter((m) => !st.seenMoves.has(moveKey(m)));
  // Only keys still in the kept list are remembered, so the set cannot grow without bound.
  st.seenMoves = keys;

  const list = $('#moves');
  const shown = moves.slice(-MOVES_SHOWN).reverse();
  const sig = shown.map(moveKey).join(';');
  if (list._sig !== sig) {
    list._sig = sig;
    const freshKeys = new Set(fresh.map(moveKey));
    list.replaceChildren(...shown.map((m) => moveItem(m, freshKeys.has(moveKey(m)))));
  }
  $('#moves-empty').hidden = moves.length > 0;

  const recent = serverNow() - ARROW_RECENT_MS;
  for (const m of fresh) if (m.at_ms >= recent) drawArrow(m);
}

function moveItem(m, isNew) {
  const ok = m.ok !== false;
  const li = el('li', { class: `move ${ok ? 'ok' : 'failed'}${isNew ? ' new' : ''}` },
    el('div', { class: 'line' },
      el('time', { datetime: new Date(m.at_ms).toISOString() }, clock(m.at_ms)),
      el('span', { class: 'mono' }, m.job),
      el('span', { class: 'cmd', title: m.command }, m.command || '')),
    el('div', { class: 'line' },
      el('span', { class: 'route' }, `${m.from} → ${m.to}`),
      el('span', { class: 'why' }, m.why || ''),
      el('span', { class: `result ${ok ? 'ok' : 'failed'}` }, ok ? '✓ ok' : '✗ failed'),
      ok ? el('span', { class: 'dim' }, `frozen ${(m.frozen_ms / 1000).toFixed(1)} s · ${bytes(m.bytes || 0)}`)
        : el('span', { class: 'error' }, m.error || 'unknown error')));
  li.title = `${m.job} ${m.from} → ${m.to} at ${new Date(m.at_ms).toLocaleString()}${m.error ? `\n${m.error}` : ''}`;
  return li;
}

/** Animated curved arrow from one card to another, removed after ARROW_MS. */
function drawArrow(m) {
  const from = cards.get(m.from);
  const to = cards.get(m.to);
  if (!from || !to || document.hidden) return;
  const a = from.root.getBoundingClientRect();
  const b = to.root.getBoundingClientRect();
  // A card scrolled out of the nodes area would make the arrow cross the other panels.
  const area = $('#nodes-panel').getBoundingClientRect();
  const inside = (r) => r.top >= area.top - 2 && r.bottom <= area.bottom + 2;
  if (!inside(a) || !inside(b)) return;
  // Page coordinates: the overlay scrolls with the page, so the arrow stays on its cards.
  const x1 = a.left + a.width / 2 + scrollX, y1 = a.top + a.height / 2 + scrollY;
  const x2 = b.left + b.width / 2 + scrollX, y2 = b.top + b.height / 2 + scrollY;
  // Bend sideways by a quarter of the distance so arrows along a row stay visible.
  const dx = x2 - x1, dy = y2 - y1, len = Math.hypot(dx, dy) || 1;
  const bend = Math.min(160, len * 0.25);
  const cx = (x1 + x2) / 2 - (dy / len) * bend, cy = (y1 + y2) / 2 + (dx / len) * bend;
  // Arrowhead points along the curve's end tangent (end minus control point).
  const tl = Math.hypot(x2 - cx, y2 - cy) || 1, ux = (x2 - cx) / tl, uy = (y2 - cy) / tl;
  const hx = x2 - ux * 12, hy = y2 - uy * 12;
  const head = `${x2},${y2} ${hx - uy * 7},${hy + ux * 7} ${hx + uy * 7},${hy - ux * 7}`;
  const g = document.createElementNS('http://www.w3.org/2000/svg', 'g');
  g.setAttribute('class', `arrow ${m.ok === false ? 'failed' : 'ok'}`);
  g.innerHTML = `<path class="shaft" pathLength="1" d="M${x1},${y1} Q${cx},${cy} ${x2},${y2}"></path>
    <polygon class="head" points="${head}"></polygon>
    <text x="${(x1 + 2 * cx + x2) / 4}" y="${(y1 + 2 * cy + y2) / 4 - 6}"></text>`;
  g.querySelector('text').textContent = `${m.job}${m.ok === false ? ' ✗ failed' : ''}`;
  const overlay = $('#overlay');
  // Cover the whole page (an SVG of zero size draws nothing); back to the viewport when empty.
  overlay.style.height = `${document.documentElement.scrollHeight}px`;
  overlay.append(g);
  for (const c of [from, to]) pulse(c.root, c === from ? 'leaving' : 'arriving');
  setTimeout(() => {
    g.remove();
    if (!overlay.firstChild) overlay.style.height = '';
  }, ARROW_MS);
}

function pulse(node, cls) {
  node.classList.remove(cls);
  void node.offsetWidth; // restart the CSS animation if it is still running
  node.classList.add(cls);
  setTimeout(() => node.classList.remove(cls), 2500);
}

// ---------- history: sparklines and plot ----------

function historyChanged() {
  for (const [name, card] of cards) drawSpark(card, name);
  drawHistory();
}

/** Path segments (broken at gaps and nulls) of one node's load; x and y map into a box. */
function linePath(name, x, y) {
  const h = st.history;
  const gap = h.step_ms * 3;
  let d = '';
  let lastT = -Infinity;
  for (const s of h.samples) {
    const v = s.loads ? s.loads[name] : null;
    if (typeof v !== 'number') {
      lastT = -Infinity;
      continue;
    }
    d += `${s.t_ms - lastT > gap ? 'M' : 'L'}${x(s.t_ms).toFixed(1)},${y(v).toFixed(1)}`;
    lastT = s.t_ms;
  }
  return d;
}

function timeRange() {
  const h = st.history;
  const last = h.samples.length ? h.samples[h.samples.length - 1].t_ms : serverNow();
  // A young master has less than an hour to show: the axis spans what it has, at least 10 min.
  const first = h.samples.length ? h.samples[0].t_ms : last;
  const span = Math.min(h.keep_ms, Math.max(600000, last - first));
  return [last - span, last];
}

function drawSpark(card, name) {
  const [t0, t1] = timeRange();
  const d = linePath(name, (t) => ((t - t0) / (t1 - t0)) * 100, (v) => 20 - (Math.min(v, BAR_FULL) / BAR_FULL) * 19);
  if (card.spark.getAttribute('d') !== d) card.spark.setAttribute('d', d);
}

let legendNames = [];

/** History legend: one entry per node, rebuilt only when the set of nodes changes. */
function syncLegend(names) {
  if (names.join(',') === legendNames.join(',')) return;
  legendNames = names;
  // Many nodes: the legend becomes a column beside the plot instead of lines under it.
  $('#history-panel').classList.toggle('many', names.length > 12);
  const ul = $('#history-legend');
  ul.replaceChildren(...names.map((name, i) => {
    const [colour, dash] = lineStyle(i);
    const sw = `<svg width="18" height="6" aria-hidden="true"><line x1="0" y1="3" x2="18" y2="3" stroke="${colour}"
      stroke-width="2" stroke-dasharray="${dash.join(' ')}"/></svg>`;
    const li = el('li', { 'data-name': name, tabindex: 0 });
    li.innerHTML = sw;
    li.append(name);
    return li;
  }));
  drawHistory();
}

function lineStyle(i) {
  return [LINE_COLOURS[i % LINE_COLOURS.length], LINE_DASHES[Math.floor(i / LINE_COLOURS.length) % LINE_DASHES.length]];
}

function setHighlight(name) {
  if (st.highlight === name) return;
  st.highlight = name;
  for (const li of $('#history-legend').children) li.classList.toggle('hl', li.dataset.name === name);
  drawHistory();
}

let drawQueued = false;

/** Coalesces redraw requests into one per animation frame. */
function drawHistory() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    paintHistory();
  });
}

function paintHistory() {
  const canvas = $('#history');
  const box = canvas.parentElement;
  const w = box.clientWidth, h = box.clientHeight;
  if (!w || !h) return;
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);

  const P = { l: 30, r: 10, t: 8, b: 18 };
  const [t0, t1] = timeRange();
  // The scale follows the 75th percentile, not the peak: a boot's brief load spike would
  // otherwise flatten the hour; higher values are drawn clipped at the top.
  const all = [];
  for (const s of st.history.samples) for (const v of Object.values(s.loads || {})) if (typeof v === 'number') all.push(v);
  all.sort((a, b) => a - b);
  const p75 = all.length ? all[Math.floor(all.length * 0.75)] : 0;
  const yMax = Math.min(Math.max(Math.ceil(p75 * 1.5 * 2) / 2, BAR_FULL), 16);
  const x = (t) => P.l + ((t - t0) / (t1 - t0)) * (w - P.l - P.r);
  const y = (v) => P.t + (1 - Math.min(v, yMax) / yMax) * (h - P.t - P.b);

  drawAxes(ctx, { w, h, P, t0, t1, yMax, x, y });
  const names = legendNames;
  const order = names.map((n, i) => i).filter((i) => names[i] !== st.highlight);
  const hi = names.indexOf(st.highlight);
  if (hi >= 0) order.push(hi); // the highlighted line goes on top
  for (const i of order) {
    const [colour, dash] = lineStyle(i);
    const p = new Path2D(linePath(names[i], x, y));
    ctx.setLineDash(dash);
    ctx.strokeStyle = colour;
    // Many nodes: thin, slightly transparent lines so crossings stay readable.
    ctx.globalAlpha = hi >= 0 ? (i === hi ? 1 : 0.12) : names.length > 12 ? 0.75 : 1;
    ctx.lineWidth = i === hi ? 2.5 : names.length > 12 ? 1 : 1.5;
    ctx.stroke(p);
  }
  ctx.globalAlpha = 1;
  ctx.setLineDash([]);
}

function drawAxes(ctx, { w, h, P, t0, t1, yMax, x, y }) {
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#9aa3ad';
  ctx.lineWidth = 1;
  const yStep = yMax > 8 ? 2 : yMax > 4 ? 1 : 0.5;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    const one = Math.abs(v - 1) < 1e-9;
    ctx.strokeStyle = one ? 'rgba(240,228,66,0.55)' : 'rgba(255,255,255,0.08)';
    ctx.setLineDash(one ? [4, 4] : []);
    ctx.beginPath();
    ctx.moveTo(P.l, Math.round(y(v)) + 0.5);
    ctx.lineTo(w - P.r, Math.round(y(v)) + 0.5);
    ctx.stroke();
    ctx.fillText(v.toFixed(yStep < 1 ? 1 : 0), P.l - 4, y(v));
  }
  ctx.setLineDash([]);
  ctx.textBaseline = 'top';
  const minutes = (t1 - t0) / 60000;
  const pxPerMin = (w - P.l - P.r) / minutes;
  // Smallest round step that leaves room for a "50 min ago" label.
  const stepMin = [1, 2, 5, 10, 15, 20, 30, 60].find((m) => m * pxPerMin >= 90) || 60;
  for (let m = 0; m <= minutes + 1e-9; m += stepMin) {
    const xm = x(t1 - m * 60000);
    ctx.textAlign = m === 0 ? 'right' : xm - P.l < 30 ? 'left' : 'center';
    ctx.fillText(m === 0 ? 'now' : `${m} min ago`, m === 0 ? w - P.r : xm, h - P.b + 4);
  }
}

// ---------- controls (token) ----------

const bearer = (token) => ({ Authorization: `Bearer ${token}` });

/** Asks the master whether the token is good; quiet = the saved token of an earlier unlock. */
async function unlock(token, quiet) {
  const err = $('#unlock-error');
  setText(err, '');
  let r;
  try {
    r = await fetch('/api/control', { headers: bearer(token), cache: 'no-store' });
  } catch (e) {
    // Master away: keep a saved token for a later reload, say why to a user who typed one.
    if (!quiet) setText(err, `Not unlocked: master unreachable (${e.message})`);
    return;
  }
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    if (r.status === 401) sessionStorage.removeItem(TOKEN_KEY);
    if (!quiet) setText(err, `Not unlocked: ${body.error || `master answered HTTP ${r.status}`}`);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  setControls(token);
  showUnlockForm(false);
  $('#token-input').value = '';
  if (!quiet) toast('Controls unlocked', 'ok');
}

function showUnlockForm(show) {
  $('#unlock-form').hidden = !show;
  $('#unlock').setAttribute('aria-expanded', String(show));
  if (show) $('#token-input').focus();
}

/** Turns controls on (token) or off (null). Control elements are created or removed, not hidden. */
function setControls(token) {
  st.token = token;
  document.body.classList.toggle('controls-on', !!token);
  $('#unlock').hidden = !!token;
  $('#lock-slot').replaceChildren(...(token ? [el('button', { type: 'button', class: 'control', id: 'lock',
    'data-action': 'lock', title: 'Forget the token and hide the controls' }, 'Lock')] : []));
  // Rows carry their controls from creation: rebuild them.
  for (const tbody of [$('#jobs tbody'), $('#pending tbody')]) {
    tbody._rows = null;
    tbody.replaceChildren();
  }
  for (const card of cards.values()) card.ctlKey = null;
  renderAll();
}

function lock(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  setControls(null);
  if (reason) toast(reason, 'error');
}

async function post(url, body, button) {
  if (button) button.disabled = true;
  try {
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...bearer(st.token) },
      body: JSON.stringify(body),
    });
    const j = await r.json().catch(() => ({}));
    if (r.ok) toast(j.message || 'done', 'ok');
    else toast(j.error || `failed: HTTP ${r.status}`, 'error');
    if (r.status === 401) lock('The master no longer accepts the token: controls locked.');
    return r.ok;
  } catch (e) {
    toast(`Master unreachable: ${e.message}`, 'error');
    return false;
  } finally {
    if (button && button.isConnected) {
      // A Move button stays disabled while its select has no target.
      const select = button.dataset.action === 'move' && button.parentElement.querySelector('select');
      button.disabled = !!(select && select.disabled);
    }
  }
}

/** Path segment for a MAC: colons are legal in a path and easier on the router left as is. */
const macSegment = (mac) => encodeURIComponent(mac).replace(/%3A/gi, ':');

function onClick(e) {
  const b = e.target.closest('[data-action]');
  if (!b || !st.token) return;
  const a = b.dataset.action;
  if (a === 'lock') lock();
  else if (a === 'node') {
    post(`/api/nodes/${encodeURIComponent(b.dataset.node)}/control`, { action: b.dataset.value }, b);
  } else if (a === 'move') {
    const select = b.parentElement.querySelector('select');
    if (select && select.value) post(`/api/jobs/${encodeURIComponent(b.dataset.job)}/migrate`, { to: select.value }, b);
  }
}

async function onApprove(form) {
  const name = form.elements.name.value.trim();
  const ip = form.elements.ip.value.trim();
  if (!name) return;
  const body = ip ? { name, ip } : { name };
  const ok = await post(`/api/pending/${macSegment(form.dataset.mac)}/approve`, body, form.querySelector('button'));
  if (ok && form.isConnected) form.reset();
}

function toast(message, kind) {
  const box = $('#toasts');
  const t = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    kind === 'error' ? '✗ ' : '✓ ', message);
  box.append(t);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => t.remove(), kind === 'error' ? 9000 : 5000);
}

// ---------- wiring ----------

function wire() {
  $('#unlock').addEventListener('click', () => showUnlockForm($('#unlock-form').hidden));
  $('#token-cancel').addEventListener('click', () => showUnlockForm(false));
  $('#unlock-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('#token-input').value.trim();
    if (token) unlock(token, false);
  });
  // Delegated handlers: rows and cards come and go without adding listeners.
  document.addEventListener('click', onClick);
  document.addEventListener('submit', (e) => {
    const form = e.target.closest('form.approve');
    if (!form) return;
    e.preventDefault();
    if (st.token) onApprove(form);
  });
  const legend = $('#history-legend');
  const hover = (e) => {
    const item = e.target.closest('[data-name], .node');
    setHighlight(item ? item.dataset.name || item.dataset.node : null);
  };
  for (const area of [legend, $('#nodes')]) {
    area.addEventListener('mouseover', hover);
    area.addEventListener('mouseleave', () => setHighlight(null));
  }
  legend.addEventListener('focusin', hover);
  legend.addEventListener('focusout', () => setHighlight(null));
  new ResizeObserver(drawHistory).observe($('#history').parentElement);
  setInterval(tick, 1000);
}

function start() {
  wire();
  setConnection('connecting');
  loadHistory();
  connect();
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) unlock(saved, true);
}

start();
