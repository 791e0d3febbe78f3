/**
 * The status page's script (status-page.ts): polls the read-only JSON API and builds the DOM with
 * `textContent` only, since every value may come from container labels. A plain string, no
 * interpolation: the page's CSP allows exactly this text by its hash.
 */
export const STATUS_PAGE_SCRIPT = `
'use strict';
(function () {
  const PERIOD_MS = 2000;
  const TIMEOUT_MS = 5000;
  const MAX_EVENTS = 200;
  const $ = (id) => document.getElementById(id);
  const ui = { summary: $('summary'), dot: $('dot'), updated: $('updated'), banner: $('banner'), notready: $('notready'), apps: $('apps'), events: $('events') };
  /** Highest event seq shown; null means the feed is (re)loaded from scratch on the next poll. */
  let lastSeq = null;
  let lastOkAt = null;
  /** backend id -> "routing/health/breaker", to flash rows whose state changed. */
  let previous = new Map();
  /** At most this many backends in all: every app starts expanded; above, collapsed to its counts. */
  const AUTO_EXPAND_BACKENDS = 100;
  /** app name -> expanded or not, as the user chose by clicking; otherwise the fleet's size decides. */
  const chosen = new Map();
  /** What the last poll got: the apps list (counts) and the backends of expanded apps, by name. */
  let shown = null;
  const ui2 = { filter: $('filter') };

  /** Builds an element; text always goes in as textContent, never as markup. */
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function add(parent, ...kids) {
    for (const k of kids) if (k) parent.appendChild(k);
    return parent;
  }
  const pill = (text, tone, solid) => el('span', 'pill ' + (tone || '') + (solid ? ' solid' : ''), text);
  function clamped(cls, text) {
    const e = el('div', 'clamp ' + (cls || ''), text);
    e.title = String(text);
    return e;
  }
  const pad = (n) => (n < 10 ? '0' : '') + n;
  function clock(iso) {
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function ago(iso) {
    const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (!isFinite(s)) return '?';
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + pad(s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + pad(Math.floor(s / 60) % 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor(s / 3600) % 24 + 'h';
  }

  async function getJson(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const res = await fetch(path, { signal: ctl.signal, cache: 'no-store', headers: { accept: 'application/json' } });
      let body = null;
      try { body = await res.json(); } catch (e) { body = null; }
      return { status: res.status, body: body };
    } finally {
      clearTimeout(timer);
    }
  }

  const HEALTH_TONE = { healthy: 'good', unhealthy: 'bad', unknown: '' };
  const BREAKER_TONE = { closed: 'good', open: 'bad', half_open: 'warn' };

  function routingOf(app, b) {
    if (app.panic) return { label: b.ejected ? 'panic' : 'routed', cls: b.ejected ? 'panic' : 'routed', tone: b.ejected ? 'warn' : 'good', routed: true };
    if (b.draining) return { label: 'draining', cls: 'draining', tone: 'warn', routed: false };
    if (b.ejected) return { label: 'ejected', cls: 'ejected', tone: 'bad', routed: false };
    if (b.backup) return { label: 'backup', cls: 'routed', tone: 'info', routed: true };
    return { label: 'routed', cls: 'routed', tone: 'good', routed: true };
  }

  function probeCell(p, failure) {
    const td = el('td', 'probe');
    if (!p) return add(td, el('span', 'muted', 'not probed yet'));
    const what = p.status_code != null ? 'HTTP ' + p.status_code : p.healthy ? 'ok' : (p.error_class || 'failed');
    add(td,
      add(el('div'), el('span', p.healthy ? 'ok-mark' : 'bad-mark', p.healthy ? '\\u2713 ' : '\\u2717 '), el('span', null, what)),
      el('div', 'sub', Number(p.response_time_ms).toFixed(1) + ' ms \\u00b7 ' + ago(p.at) + ' ago'));
    // The failure column already quotes the probe's error when it caused the last failure.
    if (!p.healthy && p.error && !(failure && String(failure.message).indexOf(p.error) >= 0)) add(td, clamped('sub mono', p.error));
    return td;
  }

  function containerCell(c) {
    const td = el('td', 'container');
    if (!c) return add(td, el('span', 'muted', '\\u2014'));
    const tone = c.state === 'running' ? 'good' : c.state === 'restarting' || c.state === 'paused' ? 'warn' : 'bad';
    add(td, clamped('mono', c.name), add(el('div', 'sub'), pill(c.state, tone)));
    const bits = [];
    if (c.docker_health) bits.push('docker: ' + c.docker_health);
    if (c.restart_count) bits.push(c.restart_count + ' restarts');
    if (c.replica != null) bits.push('replica ' + c.replica);
    bits.push(c.id);
    add(td, el('div', 'sub mono', bits.join(' \\u00b7 ')));
    return td;
  }

  function detailCell(b) {
    const td = el('td', 'detail');
    const f = b.last_failure;
    if (!f) return add(td, el('span', 'muted', 'none'), b.consecutive_successes ? el('div', 'sub', b.consecutive_successes + ' ok in a row') : null);
    // Messages start with the failure type, which is already shown as the heading.
    const prefix = f.type + ': ';
    const message = String(f.message).indexOf(prefix) === 0 ? String(f.message).slice(prefix.length) : f.message;
    add(td,
      el('div', 'ftype ' + (f.severity === 'critical' || f.severity === 'high' ? 'bad' : 'warn'), f.type.replace(/_/g, ' ')),
      clamped(null, message),
      el('div', 'sub', (b.consecutive_failures ? b.consecutive_failures + ' failed in a row \\u00b7 ' : 'last failure ') + ago(f.at) + ' ago'));
    return td;
  }

  function backendRow(app, b, seen, withContainer) {
    const r = routingOf(app, b);
    const tr = el('tr', r.cls);
    tr.dataset.backend = b.address;
    tr.title = b.id;
    const key = r.label + '/' + b.health + '/' + b.breaker;
    if (previous.has(b.id) && previous.get(b.id) !== key) tr.classList.add('changed');
    seen.set(b.id, key);
    const facts = ['weight ' + b.weight];
    if (b.backup) facts.push('backup');
    add(tr,
      add(el('td'), el('div', 'addr', b.address), el('div', 'sub', facts.join(' \\u00b7 '))),
      add(el('td', 'routing'), pill(r.label, r.tone, true), el('div', 'sub', 'for ' + ago(b.since))),
      add(el('td', 'health'), pill(b.health, HEALTH_TONE[b.health])),
      add(el('td', 'breaker'), pill(String(b.breaker).replace('_', '-'), BREAKER_TONE[b.breaker])),
      probeCell(b.last_probe, b.last_failure),
      withContainer ? containerCell(b.container) : null,
      detailCell(b));
    return tr;
  }

  /** Per-app counts: the server's (summary), or counted here from a full list. */
  function countsOf(app) {
    if (app.counts) return app.counts;
    const c = { backends: 0, routed: 0, ejected: 0, draining: 0, healthy: 0, unhealthy: 0, unknown: 0, breaker_open: 0 };
    for (const b of app.backends || []) {
      c.backends++;
      if (routingOf(app, b).routed) c.routed++;
      if (b.ejected) c.ejected++;
      if (b.draining) c.draining++;
      if (b.health === 'healthy' || b.health === 'unhealthy' || b.health === 'unknown') c[b.health]++;
      if (b.breaker === 'open') c.breaker_open++;
    }
    return c;
  }
  const totalOf = (apps) => apps.reduce((n, a) => n + countsOf(a).backends, 0);
  const isOpen = (name, total) => (chosen.has(name) ? chosen.get(name) : total <= AUTO_EXPAND_BACKENDS);
  const query = () => ui2.filter.value.trim().toLowerCase();
  const has = (text, q) => String(text == null ? '' : text).toLowerCase().indexOf(q) >= 0;
  function backendMatches(app, b, q) {
    return has(b.address, q) || has(b.id, q) || has(b.container && b.container.name, q) || has(routingOf(app, b).label, q) || has(b.health, q);
  }

  function toggle(name, total) {
    chosen.set(name, !isOpen(name, total));
    if (shown) render(shown);
    // Expanded: its backends now rather than at the next poll.
    if (isOpen(name, total) && shown && !shown.details.has(name)) void loadDetails([name]).then(() => shown && render(shown));
  }

  function appHead(app, counts, open, total) {
    const tone = app.panic || counts.routed === 0 ? 'bad' : counts.routed < counts.backends ? 'warn' : 'good';
    const head = add(el('div', 'card-head'), el('span', 'caret', open ? '\\u25be' : '\\u25b8'), el('h2', null, app.name), pill(app.protocol, 'info'),
      add(el('span', 'count ' + tone + ' routed-count'), document.createTextNode(counts.routed + '/' + counts.backends + ' routed')));
    if (counts.ejected) add(head, pill(counts.ejected + ' ejected', 'bad'));
    if (counts.unhealthy) add(head, pill(counts.unhealthy + ' unhealthy', 'bad'));
    if (counts.unknown) add(head, pill(counts.unknown + ' not probed yet', ''));
    if (app.panic) add(head, pill('panic: every backend ejected, routing to all', 'bad', true));
    head.setAttribute('role', 'button');
    head.tabIndex = 0;
    head.setAttribute('aria-expanded', String(open));
    head.title = open ? 'Collapse' : 'Show its backends';
    head.addEventListener('click', () => toggle(app.name, total));
    head.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(app.name, total); }
    });
    return head;
  }

  /** One app's card, or null when the filter hides it. */
  function appCard(app, detail, seen, total, q) {
    const open = isOpen(app.name, total);
    const full = app.backends ? app : detail;
    const nameMatches = !q || has(app.name, q);
    let backends = full && full.backends ? full.backends : null;
    if (!nameMatches) {
      if (!open || !backends) return null;
      backends = backends.filter((b) => backendMatches(app, b, q));
      if (backends.length === 0) return null;
    }
    const card = el('section', 'card app' + (open ? '' : ' collapsed'));
    card.dataset.app = app.name;
    add(card, appHead(app, countsOf(full || app), open, total));
    if (!open) return card;
    if (!backends) return add(card, el('div', 'empty', detail === null ? 'This app is gone.' : 'Loading its backends\\u2026'));
    if (backends.length === 0) return add(card, el('div', 'empty', 'No backends.'));
    // Backends from the config file have no container: no empty column for them.
    const withContainer = backends.some((b) => b.container);
    const columns = [['backend', 'Backend'], ['routing', 'Routing'], ['health', 'Health'], ['breaker', 'Breaker'], ['probe', 'Last probe'],
      ['container', 'Container'], ['detail', 'Last failure']].filter((c) => withContainer || c[0] !== 'container');
    const table = el('table', withContainer ? 'with-container' : null);
    const cols = add(el('colgroup'), ...columns.map((c) => el('col', 'col-' + c[0])));
    const headRow = add(el('tr'), ...columns.map((c) => el('th', null, c[1])));
    const body = el('tbody');
    for (const b of backends) body.appendChild(backendRow(app, b, seen, withContainer));
    return add(card, add(table, cols, add(el('thead'), headRow), body));
  }

  function rejectedCard(list) {
    const card = el('section', 'card rejected');
    add(card, add(el('div', 'card-head'), el('h2', null, 'Rejected containers'), pill(list.length, 'bad'),
      el('span', 'muted', 'left out of routing: their orchestry.* labels are invalid')));
    for (const r of list) {
      const item = add(el('div', 'rejected-item'), add(el('div'), el('span', 'addr', r.name), el('span', 'muted mono', '  ' + r.id)));
      const ul = el('ul', 'errors');
      for (const e of r.errors || []) ul.appendChild(el('li', null, e));
      add(card, add(item, ul));
    }
    return card;
  }

  /** Fetches the backends of these apps into shown.details (null for an app that is gone). */
  async function loadDetails(names) {
    const got = await Promise.all(names.map((n) => getJson('api/v1/apps/' + encodeURIComponent(n))));
    names.forEach((n, i) => {
      if (shown) shown.details.set(n, got[i].status === 200 ? got[i].body : got[i].status === 404 ? null : shown.details.get(n));
    });
  }

  function render(data) {
    const apps = data.apps || [];
    const rejected = data.rejected_containers || [];
    const total = totalOf(apps);
    const q = query();
    const seen = new Map();
    const nodes = [];
    for (const a of apps) {
      const card = appCard(a, data.details.get(a.name), seen, total, q);
      if (card) nodes.push(card);
    }
    if (apps.length === 0) nodes.push(add(el('section', 'card'), el('div', 'empty', 'No apps configured or discovered yet.')));
    else if (nodes.length === 0) nodes.push(add(el('section', 'card no-match'), el('div', 'empty', 'No app or shown backend matches \\u201c' + ui2.filter.value.trim() + '\\u201d.')));
    if (rejected.length) nodes.push(rejectedCard(rejected));
    ui.apps.replaceChildren(...nodes);
    // Rows not built this time (collapsed, filtered out) keep their last state for the flash.
    for (const [id, key] of seen) previous.set(id, key);
  }

  function renderApps(data) {
    const apps = data.apps || [];
    // Which sidecar this is, when several run (one per node).
    const instance = typeof data.instance === 'string' ? data.instance : '';
    $('instance').textContent = instance;
    const rejected = data.rejected_containers || [];
    render(data);
    let total = 0, routed = 0, ejected = 0, panics = 0;
    for (const a of apps) {
      if (a.panic) panics++;
      const c = countsOf(a);
      total += c.backends;
      routed += c.routed;
      ejected += c.ejected;
    }
    const stat = (label, value, tone) => add(el('span', 'stat ' + (tone || '')), el('b', null, value), document.createTextNode(' ' + label));
    const store = data.state_store;
    // Routing goes on without the store; history, reports and restart safety do not.
    const storeStat = (st) => {
      const node = stat('state store (history and restart state are not being kept)', 'degraded', 'bad');
      node.title = st.error || '';
      return node;
    };
    // Several sidecars on one node: which of them acts on its Swarm tasks (the lease holder).
    const leaseStat = (l) => {
      const until = l.expires_at ? ' until ' + new Date(l.expires_at).toLocaleTimeString() : '';
      const node = l.held ? stat('holds the Swarm lease' + until, 'this sidecar')
        : l.holder ? stat('holds the Swarm lease' + until + ' (not this sidecar)', l.holder, 'warn')
        : stat('Swarm lease', 'nobody holds the', 'warn');
      node.id = 'swarm-lease';
      node.title = l.name + ' (node ' + l.node + '), term ' + l.term + '; this sidecar is ' + l.instance;
      return node;
    };
    ui.summary.replaceChildren(
      stat(apps.length === 1 ? 'app' : 'apps', apps.length),
      stat('backends routed', routed + '/' + total, routed < total ? 'warn' : ''),
      stat('ejected', ejected, ejected ? 'bad' : ''),
      ...(panics ? [stat(panics === 1 ? 'app in panic' : 'apps in panic', panics, 'bad')] : []),
      ...(rejected.length ? [stat(rejected.length === 1 ? 'rejected container' : 'rejected containers', rejected.length, 'bad')] : []),
      ...(store && store.state === 'degraded' ? [storeStat(store)] : []),
      ...(data.swarm_lease ? [leaseStat(data.swarm_lease)] : []));
    document.title = (ejected ? '(' + ejected + ' ejected) ' : '') + 'orchestry-sidecar status' + (instance ? ': ' + instance : '');
  }

  function renderReadiness(ready) {
    const reasons = ready && ready.body && Array.isArray(ready.body.reasons) ? ready.body.reasons : [];
    if (ready && ready.status === 200) { ui.notready.hidden = true; return; }
    const ul = el('ul');
    for (const r of reasons) ul.appendChild(el('li', null, r));
    ui.notready.replaceChildren(document.createTextNode('Not ready (/readyz answers ' + (ready ? ready.status : '?') + ')'), ul);
    ui.notready.hidden = false;
  }

  function eventTone(e) {
    const d = e.data || {};
    if (e.kind === 'transition') {
      if (d.to === 'unhealthy' || d.to === 'open' || /^panic:/.test(e.message)) return 'bad';
      if (d.to === 'half_open') return 'warn';
      return 'good';
    }
    if (e.kind === 'failure') return 'warn';
    if (e.kind === 'recovery') return d.ok === false ? 'bad' : 'info';
    if (e.kind === 'nginx' || e.kind === 'config') return d.result === 'failed' || d.error ? 'bad' : '';
    return '';
  }

  function eventNote(e) {
    const d = e.data || {};
    const bits = [];
    for (const k of ['reason', 'failure_type', 'strategy', 'error', 'stage', 'path']) {
      if (d[k] !== undefined && d[k] !== null && d[k] !== '' && String(e.message).indexOf(String(d[k])) < 0) bits.push(k.replace('_', ' ') + ': ' + d[k]);
    }
    if (d.duration_ms !== undefined) bits.push(d.duration_ms + ' ms');
    return bits.join(' \\u00b7 ');
  }

  function eventItem(e, fresh) {
    const li = el('li', eventTone(e) + (fresh ? ' fresh' : ''));
    li.dataset.kind = e.kind;
    li.dataset.seq = e.seq;
    li.title = e.at;
    add(li, add(el('div', 'ev-head'), el('span', 'ev-time', clock(e.at)), pill(e.kind, eventTone(e)),
      el('span', 'ev-who', e.backend || e.app || '')), clamped('ev-msg', e.message));
    const note = eventNote(e);
    if (note) add(li, clamped('ev-note', note));
    return li;
  }

  function renderEvents(res, reset) {
    if (res.status !== 200 || !res.body || !Array.isArray(res.body.events)) {
      ui.events.replaceChildren(el('li', 'placeholder muted', 'Event log not available (' + res.status + ').'));
      return;
    }
    if (reset) ui.events.replaceChildren();
    const fresh = res.body.events;
    if (fresh.length) ui.events.querySelectorAll('li.placeholder').forEach((li) => li.remove());
    for (const e of fresh) {
      ui.events.insertBefore(eventItem(e, !reset), ui.events.firstChild);
      lastSeq = Math.max(lastSeq || 0, e.seq);
    }
    if (lastSeq === null) lastSeq = 0;
    while (ui.events.children.length > MAX_EVENTS) ui.events.lastChild.remove();
    if (!ui.events.firstChild) ui.events.appendChild(el('li', 'placeholder muted', 'No events yet.'));
  }

  function showDown(reason) {
    // Reload the feed from scratch once it is back: the sidecar may have restarted with new seqs.
    lastSeq = null;
    document.body.classList.add('stale');
    ui.dot.className = 'dot down';
    ui.banner.textContent = 'Sidecar unreachable (' + reason + '), retrying every ' + PERIOD_MS / 1000 + ' s.' +
      (lastOkAt ? ' Showing the state as of ' + clock(lastOkAt) + '.' : '');
    ui.banner.hidden = false;
    ui.updated.textContent = 'unreachable';
  }

  async function poll() {
    try {
      const reset = lastSeq === null;
      const [apps, ready, events] = await Promise.all([
        getJson('api/v1/apps?summary=1'),
        getJson('readyz'),
        getJson(reset ? 'api/v1/events?limit=' + MAX_EVENTS : 'api/v1/events?limit=1000&after=' + lastSeq),
      ]);
      if (apps.status !== 200 || !apps.body) {
        showDown('api/v1/apps answered ' + apps.status + (apps.body && apps.body.error ? ': ' + apps.body.error : ''));
        return;
      }
      // Only the expanded apps' backends are fetched: a fleet of thousands polls its counts.
      const list = apps.body.apps || [];
      const total = totalOf(list);
      const before = shown ? shown.details : new Map();
      shown = { ...apps.body, details: new Map() };
      for (const a of list) if (!a.backends && isOpen(a.name, total) && before.has(a.name)) shown.details.set(a.name, before.get(a.name));
      await loadDetails(list.filter((a) => !a.backends && isOpen(a.name, total)).map((a) => a.name));
      renderApps(shown);
      renderReadiness(ready);
      renderEvents(events, reset);
      lastOkAt = new Date().toISOString();
      document.body.classList.remove('stale');
      ui.banner.hidden = true;
      ui.dot.className = 'dot ok';
      ui.updated.textContent = 'live \\u00b7 updated ' + clock(lastOkAt);
    } catch (err) {
      showDown(err && err.name === 'AbortError' ? 'no answer within ' + TIMEOUT_MS / 1000 + ' s' : 'connection failed');
    } finally {
      setTimeout(poll, PERIOD_MS);
    }
  }
  // Filtering needs no new data: the last poll's is shown again.
  ui2.filter.addEventListener('input', () => { if (shown) render(shown); });
  poll();
})();
`;
