/* rollcall dashboard: lists the registry, then follows /v1/events from the
 * index of that listing, so no change falls between the two. Every table
 * renders only the rows in view (fixed row height, a tall body for the
 * scroll bar), and all drawing happens once per animation frame. Text from
 * the server only ever goes through textContent. With --auth-token the page
 * asks for a token when the API answers 401 (see "Access" below). In a
 * cluster (--etcd) it shows the nodes and each session's home; a session
 * homed on another node has no lease or queue in listings ("—"). */
'use strict';

(() => {
  const PAGE = 1000;              // listing page size (the server's maximum)
  const SESSIONS_EVERY_MS = 2500; // heartbeats and queues change without events
  const NODES_EVERY_MS = 3000;    // nodes join and leave without events
  const NODES_SOON_MS = 300;      // after sessions come or go, their homes' counts
  const FADE_MS = 1000;           // an ended session's row fades this long
  const DETAIL_BATCH_MS = 150;    // property/group fetches are batched this long
  const DETAIL_PARALLEL = 4;      // at most this many in flight (one per key)
  const RETRY_MS = 1000;          // as the server's "retry: 1000"
  const OVERSCAN = 6;             // rows drawn above and below the view
  const MAX_CHIPS = 12;           // holders/members drawn in one row
  const MAX_TEXT = 400;           // characters of a value put in a cell

  const $ = (id) => document.getElementById(id);
  const now = () => performance.now();
  const fmt = (n) => n.toLocaleString('en-US');
  const DASH = '—'; // a number only the session's home node knows

  /* ------------------------------------------------------------------ */
  /* State                                                               */

  // at: the event index an entry's state reflects; older events skip it.
  // A listing or fetch at index N reflects every event up to N, so at = N.
  // Several events may share one index (all that one change released), so
  // an entry changed by an event of index N is at N - 0.5 (eventAt): the
  // other events of N still apply to it, older ones do not.
  const eventAt = (index) => index - 0.5;

  function emptyState() {
    return {
      sessions: new Map(), // id -> {id, label, ttl, expiresAt, names, props, groups, queued, node, remote, seen, cAt, ended, v, flash}
      names: new Map(),    // key -> {key, lk, session, value, at, v, flash}
      props: new Map(),    // key -> multi entry (below)
      groups: new Map(),
      nodes: new Map(),    // name -> {key, url, sessions, since, v, flash}
      nodesListed: false,  // the first /v1/nodes answer is in (later arrivals flash)
      index: 0,            // the last index whose events were all applied
      part: 0,             // an index whose events are being applied (its last is yet to come)
      partSeen: null,      // the events of `part` applied, so a resumed stream skips them
      deltas: [],          // recent per-session count changes, replayed over a sessions refresh
    };
  }

  let S = emptyState();
  const dead = new Map(); // ended session id -> when (ids are never reused)
  const DEAD_KEEP_MS = 60000; // longer than any listing that could still show one
  let labelsVer = 0;      // bumped when a session's label becomes known
  let gen = 0;            // bumped by every full listing; older async work is dropped
  let es = null;          // the EventSource
  let retryTimer = 0;
  let connState = '';
  let loaded = false;     // the first listing is in
  let selfNode = null;    // X-Rollcall-Node of this page's node (cluster mode only)

  function valueOf(o) {
    return o && Object.prototype.hasOwnProperty.call(o, 'value') ? o.value : null;
  }

  // queued is null and remote true for a session homed on another node:
  // its lease and mailbox live there, and listings here do not show them.
  function newSession(id, seen) {
    return { id, label: null, ttl: 0, expiresAt: 0, names: 0, props: 0, groups: 0, queued: 0,
      node: null, remote: false, seen, cAt: seen, ended: null, v: 0, flash: 0, info: false };
  }

  function newMulti(key, count, at) {
    // holders: null until fetched (listings give only a count)
    return { key, lk: key.toLowerCase(), count, holders: null, at, uncertain: false,
      inflight: false, queued: false, pend: null, v: 0, flash: 0 };
  }

  /* ------------------------------------------------------------------ */
  /* Access                                                              */

  // A server with --auth-token answers 401 to a request without a good
  // token. The page then stops, asks for one (a read token is enough: it
  // only reads and follows), checks it, keeps it in this tab's
  // sessionStorage and sends it from then on: "Authorization: Bearer" on
  // fetches, access_token= on the event stream's URL (EventSource cannot
  // set headers). The token never goes into the page's text or its URL.
  const TOKEN_KEY = 'rollcall.token';
  const TOKEN_RE = /^[\x21-\x7e]+$/; // what an HTTP header can carry as is
  let token = null;       // the token sent, null for none
  let locked = false;     // the prompt is up: nothing is fetched until it is answered

  try {
    const t = sessionStorage.getItem(TOKEN_KEY);
    if (t && TOKEN_RE.test(t)) token = t;
  } catch (e) { /* no storage: ask each time */ }

  function saveToken(t) {
    token = t;
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* kept for this page only */ }
    $('signout').hidden = !t;
  }

  function withToken(headers, t) {
    if (t) headers.Authorization = 'Bearer ' + t;
    return headers;
  }

  // Whether the server takes t: 401 or not. A HEAD of the smallest read.
  async function tokenStatus(t) {
    const r = await fetch('/v1/stats', { method: 'HEAD', headers: withToken({}, t), cache: 'no-store' });
    return r.status;
  }

  // A 401 to a request sent with `used`: stop and ask. Answers to requests
  // sent with an older token, or while the prompt is up, change nothing.
  function refused(used) {
    if (locked || used !== token) return;
    if (used) saveToken(null); // a refused token is not kept for the next load
    locked = true;
    gen++;
    closeStream();
    clearTimeout(retryTimer);
    clearTimeout(sessTimer);
    clearTimeout(nodesTimer);
    nodesTimer = 0;
    // what was shown is not for a page without a token
    S = emptyState();
    loaded = false;
    for (const t of Object.values(tables)) {
      t.structural = true;
      t.map = S[t.name];
    }
    setConn('locked', 'the server needs an access token');
    draw();
    showPrompt(used ? 'The saved token was refused: the server\'s tokens may have changed.' : '');
  }

  const authEl = $('auth');
  const authInput = $('auth-token');
  const authGo = $('auth-go');
  let checking = false;

  function showPrompt(error) {
    $('auth-error').textContent = error;
    authInput.setAttribute('aria-invalid', error ? 'true' : 'false');
    if (authEl.hidden) {
      authEl.hidden = false;
      for (const e of document.querySelectorAll('body > header, body > main')) e.inert = true;
    }
    authInput.focus();
    authInput.select();
  }

  function hidePrompt() {
    authEl.hidden = true;
    authInput.value = '';
    $('auth-error').textContent = '';
    for (const e of document.querySelectorAll('body > header, body > main')) e.inert = false;
  }

  $('auth-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (checking) return;
    const t = authInput.value.trim();
    if (!t) {
      showPrompt('Paste a token first.');
      return;
    }
    if (!TOKEN_RE.test(t)) {
      showPrompt('A token is letters, digits and punctuation, without spaces.');
      return;
    }
    checking = true;
    authGo.disabled = true;
    authGo.textContent = 'Checking…';
    let status;
    try {
      status = await tokenStatus(t);
    } catch (err) {
      status = 0;
    }
    checking = false;
    authGo.disabled = false;
    authGo.textContent = 'Continue';
    if (status === 401) {
      showPrompt('That token was refused. Check it and try again.');
      return;
    }
    if (!status) {
      showPrompt('The server did not answer. Try again in a moment.');
      return;
    }
    saveToken(t);
    locked = false;
    hidePrompt();
    sync();
  });

  // Forgets the token; a server that wants one asks for it again.
  $('signout').addEventListener('click', () => {
    saveToken(null);
    sync();
  });

  $('signout').hidden = !token;

  /* ------------------------------------------------------------------ */
  /* HTTP                                                                */

  async function getJSON(path) {
    const used = token;
    const r = await fetch(path, { headers: withToken({ Accept: 'application/json' }, used), cache: 'no-store' });
    const index = Number(r.headers.get('X-Rollcall-Index'));
    const node = r.headers.get('X-Rollcall-Node'); // the node that answered (the home, when forwarded)
    const body = await r.json().catch(() => null);
    if (!r.ok) {
      if (r.status === 401) refused(used);
      const e = new Error((body && body.message) || ('HTTP ' + r.status));
      e.status = r.status;
      throw e;
    }
    return { body, index: Number.isFinite(index) ? index : 0, node };
  }

  // Every page of a listing; onPage(entries, index). Returns the first page's index.
  async function listAll(path, field, onPage) {
    let after = null;
    let first = null;
    for (;;) {
      let url = path + '?limit=' + PAGE;
      if (after !== null) url += '&after=' + encodeURIComponent(after);
      const { body, index, node } = await getJSON(url);
      if (node) selfNode = node; // a listing is never forwarded
      if (first === null) first = index;
      onPage(body[field] || [], index, now());
      if (body.next === null || body.next === undefined) return first;
      after = body.next;
    }
  }

  /* ------------------------------------------------------------------ */
  /* Listing everything, then following                                  */

  function sessionFromList(st, s, index, t) {
    if (dead.has(s.id)) return;
    let x = st.sessions.get(s.id);
    if (!x) {
      x = newSession(s.id, index);
      st.sessions.set(s.id, x);
      tables.sessions.structural = true;
    }
    setLabel(x, s.label);
    setNode(x, s.node);
    x.ttl = s.ttl;
    // null: homed on another node, which alone knows its lease and queue
    x.remote = typeof s.expires_in_ms !== 'number';
    x.expiresAt = x.remote ? 0 : t + s.expires_in_ms;
    x.names = s.names; x.props = s.props; x.groups = s.groups;
    x.queued = typeof s.queued === 'number' ? s.queued : null;
    x.cAt = index;
    x.info = true;
    if (index > x.seen) x.seen = index;
    x.v++;
  }

  function setLabel(x, label) {
    const l = typeof label === 'string' ? label : '';
    if (x.label !== l) {
      x.label = l;
      x.ll = l.toLowerCase();
      labelsVer++;
      tables.sessions.structural = true; // sorted by label
    }
  }

  function setNode(x, node) {
    const n = typeof node === 'string' && node ? node : null;
    if (x.node !== n) {
      x.node = n;
      tables.sessions.structural = true; // the node column shows when any session has one
    }
  }

  async function sync() {
    if (locked) return;
    const my = ++gen;
    closeStream();
    clearTimeout(retryTimer);
    setConn(S.index ? 'reconnecting' : 'connecting');
    const st = emptyState();
    try {
      // The first listing's index is where the event stream starts: every
      // later listing is at or past it, and replaying the events between
      // is harmless (each entry remembers the index its state is from).
      const i0 = await listAll('/v1/sessions', 'sessions', (arr, index, t) => {
        for (const s of arr) sessionFromList(st, s, index, t);
      });
      await Promise.all([
        listAll('/v1/names', 'names', (arr, index) => {
          for (const n of arr) {
            st.names.set(n.key, { key: n.key, lk: n.key.toLowerCase(), session: n.session,
              value: valueOf(n), at: index, v: 0, flash: 0 });
          }
        }),
        listAll('/v1/props', 'props', (arr, index) => {
          for (const p of arr) st.props.set(p.key, newMulti(p.key, p.holders, index));
        }),
        listAll('/v1/groups', 'groups', (arr, index) => {
          for (const g of arr) st.groups.set(g.group, newMulti(g.group, g.members, index));
        }),
      ]);
      if (my !== gen) return;
      st.index = i0;
      S = st;
      loaded = true;
      for (const t of Object.values(tables)) {
        t.structural = true;
        t.map = S[t.name];
      }
      openStream(i0);
      scheduleSessions();
      refreshNodes();
      draw();
    } catch (e) {
      if (my !== gen) return;
      setConn('reconnecting', 'listing failed: ' + e.message);
      clearTimeout(retryTimer);
      retryTimer = setTimeout(sync, RETRY_MS);
    }
  }

  const EVENT_TYPES = ['session_created', 'session_expired', 'session_deleted', 'name_registered',
    'name_updated', 'name_unregistered', 'prop_set', 'prop_removed', 'group_joined', 'group_left', 'reset'];

  function openStream(after) {
    closeStream();
    clearTimeout(retryTimer);
    // EventSource sends Accept: text/event-stream. On a drop we reopen it
    // ourselves from the last index applied: the server prefers ?after= to
    // Last-Event-ID, so its own retry would replay from the first index.
    const src = new EventSource('/v1/events?after=' + after +
      (token ? '&access_token=' + encodeURIComponent(token) : ''));
    es = src;
    src.onopen = () => { if (es === src) setConn('live'); };
    src.onerror = () => {
      if (es !== src) return;
      setConn('reconnecting', 'event stream lost');
      closeStream();
      clearTimeout(retryTimer);
      retryTimer = setTimeout(reopen, RETRY_MS);
    };
    for (const t of EVENT_TYPES) src.addEventListener(t, onEvent);
  }

  // EventSource does not say why it failed: before opening it again, a
  // HEAD says whether the token was refused (the server restarted with
  // other tokens, say). A server that is down fails both; we come back.
  async function reopen() {
    const my = gen;
    const used = token;
    try {
      if (await tokenStatus(used) === 401) {
        refused(used);
        return;
      }
    } catch (e) { /* not up yet: the stream will fail and bring us here again */ }
    if (my === gen && !locked) openStream(S.index);
  }

  function closeStream() {
    if (es) {
      es.close();
      es = null;
    }
  }

  function onEvent(msg) {
    let d;
    try { d = JSON.parse(msg.data); } catch (e) { return; }
    if (!d || typeof d !== 'object') return;
    if (d.type === 'reset') { // we fell behind what the server keeps: list again
      sync();
      return;
    }
    if (typeof d.index !== 'number' || d.index <= S.index) return; // seen already
    // Several events may share an index; only the last of them carries the
    // stream's id: (msg.lastEventId is an earlier index until it comes). A
    // stream cut between them is reopened at S.index and so sends the whole
    // index again: the events of it already applied are skipped.
    if (d.index !== S.part) {
      if (S.part) S.index = S.part; // (its last event never came)
      S.part = d.index;
      S.partSeen = new Set();
    }
    const sig = d.type + '\n' + d.session + '\n' + (d.key !== undefined ? d.key : d.group !== undefined ? d.group : '');
    if (S.partSeen.has(sig)) return;
    S.partSeen.add(sig);
    if (msg.lastEventId === String(d.index)) {
      S.index = d.index;
      S.part = 0;
      S.partSeen = null;
    }
    apply(d);
    draw();
  }

  function apply(d) {
    const t = now();
    switch (d.type) {
      case 'session_created': sessionCreated(d.session, d.index); break;
      case 'session_expired': endSession(d.session, 'expired'); break;
      case 'session_deleted': endSession(d.session, 'deleted'); break;
      case 'name_registered':
      case 'name_updated': nameSet(d, t); break;
      case 'name_unregistered': nameDel(d); break;
      case 'prop_set': multiSet(tables.props, d.key, d, t); break;
      case 'prop_removed': multiDel(tables.props, d.key, d); break;
      case 'group_joined': multiSet(tables.groups, d.group, d, t); break;
      case 'group_left': multiDel(tables.groups, d.group, d); break;
      default: return;
    }
    if (d.type.startsWith('session_')) nodesSoon(); // a home's count changed
    else alive(d.session, d.index);
  }

  /* ------------------------------------------------------------------ */
  /* Sessions                                                            */

  // A request with a session's token renews its lease: count it from now.
  function alive(id, index) {
    const x = S.sessions.get(id);
    if (x && !x.ended && !x.remote && x.ttl && index > x.cAt) x.expiresAt = now() + x.ttl * 1000;
  }

  // Count changes from events, kept until a sessions listing includes them.
  function delta(d, field, by) {
    const x = S.sessions.get(d.session);
    if (x && d.index > x.cAt) {
      x[field] += by;
      x.v++;
    }
    S.deltas.push({ i: d.index, id: d.session, f: field, by });
  }

  function sessionCreated(id, index) {
    if (dead.has(id) || S.sessions.has(id)) return;
    const x = newSession(id, index);
    x.flash = now();
    S.sessions.set(id, x);
    tables.sessions.structural = true;
    wantInfo(id);
  }

  function endSession(id, how) {
    dead.set(id, now());
    const x = S.sessions.get(id);
    if (!x || (x.ended && x.ended !== 'ended')) return;
    const first = !x.ended;
    x.ended = how;
    tables.sessions.structural = true; // the tally counts live sessions
    x.v++;
    if (!first) return; // the event says how a session we saw vanish ended
    setTimeout(() => {
      if (S.sessions.get(id) === x) {
        S.sessions.delete(id);
        tables.sessions.structural = true;
        draw();
      }
    }, FADE_MS);
  }

  // A new session's label and lease: one GET each, or one listing for many.
  const infoWanted = new Set();
  let infoTimer = 0;

  function wantInfo(id) {
    infoWanted.add(id);
    if (!infoTimer) infoTimer = setTimeout(fetchInfo, DETAIL_BATCH_MS);
  }

  function fetchInfo() {
    infoTimer = 0;
    const ids = [...infoWanted].filter((id) => S.sessions.has(id) && !S.sessions.get(id).ended);
    infoWanted.clear();
    if (ids.length > 8) {
      refreshSessions();
      return;
    }
    const my = gen;
    for (const id of ids) {
      // forwarded to the session's home: it has the lease, and answers as that node
      getJSON('/v1/sessions/' + encodeURIComponent(id)).then(({ body }) => {
        const x = S.sessions.get(id);
        if (my !== gen || !x || x.ended || !body) return;
        setLabel(x, body.label);
        setNode(x, body.node);
        x.ttl = body.ttl;
        // as listings here show it: another node's session has no lease or queue
        x.remote = !!(x.node && selfNode && x.node !== selfNode) || typeof body.expires_in_ms !== 'number';
        x.expiresAt = x.remote ? 0 : now() + body.expires_in_ms;
        if (x.remote) x.queued = null;
        x.info = true;
        x.v++;
        draw();
      }, (e) => {
        if (e.status === 404 && my === gen) endSession(id, 'ended');
      });
    }
  }

  let sessTimer = 0;
  let sessBusy = false;

  function scheduleSessions() {
    clearTimeout(sessTimer);
    sessTimer = setTimeout(refreshSessions, SESSIONS_EVERY_MS);
  }

  async function refreshSessions() {
    if (sessBusy) return;
    sessBusy = true;
    clearTimeout(sessTimer);
    const my = gen;
    const listed = new Map();
    try {
      const first = await listAll('/v1/sessions', 'sessions', (arr, index, t) => {
        for (const s of arr) listed.set(s.id, { s, index, t });
      });
      if (my !== gen) return;
      const byId = new Map();
      for (const d of S.deltas) {
        if (!byId.has(d.id)) byId.set(d.id, []);
        byId.get(d.id).push(d);
      }
      for (const { s, index, t } of listed.values()) {
        if (dead.has(s.id)) continue;
        sessionFromList(S, s, index, t);
        const x = S.sessions.get(s.id);
        for (const d of byId.get(s.id) || []) if (d.i > index) x[d.f] += d.by; // newer than the listing
      }
      // Known at the listing's index but not in it: it ended (its event will tell how).
      for (const x of S.sessions.values()) {
        if (!x.ended && !listed.has(x.id) && x.seen <= first) endSession(x.id, 'ended');
      }
      const old = now() - DEAD_KEEP_MS;
      for (const [id, t] of dead) if (t < old) dead.delete(id);
      S.deltas = S.deltas.filter((d) => d.i > first);
      draw();
    } catch (e) {
      // the event stream's own error handling shows the state
    } finally {
      sessBusy = false;
      if (my === gen) scheduleSessions();
    }
  }

  /* ------------------------------------------------------------------ */
  /* Nodes                                                               */

  // GET /v1/nodes every few seconds, and soon after sessions come or go
  // (each node's count of the sessions it homes). A single node lists itself.
  let nodesTimer = 0;
  let nodesDue = 0;
  let nodesBusy = false;
  let nodesAgain = false;

  function scheduleNodes(ms) {
    const due = now() + ms;
    if (nodesTimer && nodesDue <= due) return; // one is due sooner already
    clearTimeout(nodesTimer);
    nodesDue = due;
    nodesTimer = setTimeout(refreshNodes, ms);
  }

  function nodesSoon() {
    if (loaded) scheduleNodes(NODES_SOON_MS);
  }

  async function refreshNodes() {
    clearTimeout(nodesTimer);
    nodesTimer = 0;
    if (locked) return;
    if (nodesBusy) { // what changed meanwhile may not be in the answer on its way
      nodesAgain = true;
      return;
    }
    nodesBusy = true;
    const my = gen;
    try {
      const { body, node } = await getJSON('/v1/nodes');
      if (my !== gen) return; // listed again since: that listing asks again
      if (node) selfNode = node;
      setNodes(body && Array.isArray(body.nodes) ? body.nodes : []);
      draw();
    } catch (e) {
      // a server that is down or refuses: the stream and listings show it
    } finally {
      nodesBusy = false;
      const again = nodesAgain;
      nodesAgain = false;
      if (!locked) scheduleNodes(again ? 0 : NODES_EVERY_MS);
    }
  }

  function setNodes(list) {
    const t = now();
    const seen = new Set();
    for (const n of list) {
      if (!n || typeof n.node !== 'string' || seen.has(n.node)) continue;
      seen.add(n.node);
      let x = S.nodes.get(n.node);
      if (!x) {
        x = { key: n.node, lk: n.node.toLowerCase(), v: 0, flash: S.nodesListed ? t : 0 };
        S.nodes.set(n.node, x);
        tables.nodes.structural = true;
      }
      x.url = typeof n.url === 'string' ? n.url : '';
      x.sessions = typeof n.sessions === 'number' ? n.sessions : null;
      x.since = typeof n.since === 'string' ? n.since : '';
      x.v++; // its uptime moved on
    }
    for (const k of S.nodes.keys()) {
      if (!seen.has(k)) {
        S.nodes.delete(k);
        tables.nodes.structural = true;
      }
    }
    S.nodesListed = true;
  }

  /* ------------------------------------------------------------------ */
  /* Names                                                               */

  function nameSet(d, t) {
    let n = S.names.get(d.key);
    if (d.type === 'name_registered') delta(d, 'names', 1);
    if (n && d.index <= n.at) return;
    if (!n) {
      n = { key: d.key, lk: d.key.toLowerCase(), session: d.session, value: null, at: 0, v: 0, flash: 0 };
      S.names.set(d.key, n);
      tables.names.structural = true;
    }
    n.session = d.session;
    n.value = valueOf(d);
    n.at = eventAt(d.index);
    n.v++;
    n.flash = t;
  }

  function nameDel(d) {
    delta(d, 'names', -1);
    const n = S.names.get(d.key);
    if (!n || d.index <= n.at) return;
    S.names.delete(d.key);
    tables.names.structural = true;
  }

  /* ------------------------------------------------------------------ */
  /* Properties and groups: listed as counts, holders fetched per key     */

  function holderSet(m, d) {
    const i = m.holders.findIndex((h) => h.session === d.session);
    const h = { session: d.session, value: valueOf(d) };
    if (i >= 0) m.holders[i] = h;
    else m.holders.push(h);
    m.count = m.holders.length;
    return i < 0;
  }

  function holderDel(m, d) {
    m.holders = m.holders.filter((h) => h.session !== d.session);
    m.count = m.holders.length;
  }

  function multiSet(T, key, d, t) {
    let m = T.map.get(key);
    if (!m) { // a key we do not have has no holders: this one is the first
      m = newMulti(key, 0, 0);
      m.holders = [];
      T.map.set(key, m);
      T.structural = true;
    }
    if (m.pend) m.pend.push(d);
    if (d.index <= m.at) return;
    m.at = eventAt(d.index);
    if (m.holders) {
      if (holderSet(m, d)) delta(d, T.field, 1);
    } else {
      m.uncertain = true; // new holder or new value? the key's holders will say
      want(T, m);
    }
    m.v++;
    m.flash = t;
  }

  function multiDel(T, key, d) {
    delta(d, T.field, -1);
    const m = T.map.get(key);
    if (!m) return;
    if (m.pend) m.pend.push(d);
    if (d.index <= m.at) return;
    m.at = eventAt(d.index);
    if (m.holders) {
      holderDel(m, d);
    } else {
      m.count = Math.max(0, m.count - 1);
      if (m.uncertain) want(T, m);
    }
    if (m.count === 0 && !m.uncertain) {
      T.map.delete(key);
      T.structural = true;
      return;
    }
    m.v++;
  }

  const detailQueue = [];
  let detailTimer = 0;
  let detailInflight = 0;

  function want(T, m) {
    if (m.queued || m.inflight) return;
    m.queued = true;
    detailQueue.push([T, m]);
    if (!detailTimer) detailTimer = setTimeout(pumpDetails, DETAIL_BATCH_MS);
  }

  function pumpDetails() {
    detailTimer = 0;
    while (detailInflight < DETAIL_PARALLEL && detailQueue.length) {
      const [T, m] = detailQueue.shift();
      m.queued = false;
      // still ours, still unknown, and still worth it (in view, or its count is a guess)
      if (T.map.get(m.key) !== m || (m.holders && !m.uncertain)) continue;
      if (!m.uncertain && !T.vt.shows(m.key)) continue;
      fetchDetail(T, m);
    }
  }

  function fetchDetail(T, m) {
    const my = gen;
    m.inflight = true;
    m.pend = [];
    detailInflight++;
    getJSON(T.path + encodeURIComponent(m.key)).then(({ body, index }) => {
      if (my !== gen || T.map.get(m.key) !== m || !body) return;
      const list = body[T.list] || [];
      m.holders = list.map((h) => ({ session: h.session, value: valueOf(h) }));
      m.count = m.holders.length;
      m.at = index;
      m.uncertain = false;
      for (const d of m.pend) { // what changed while the answer was on its way
        if (d.index <= m.at) continue;
        m.at = eventAt(d.index);
        if (d.type === 'prop_set' || d.type === 'group_joined') holderSet(m, d);
        else holderDel(m, d);
      }
      if (m.count === 0) {
        T.map.delete(m.key);
        T.structural = true;
      }
      m.v++;
      draw();
    }, () => {}).finally(() => {
      m.inflight = false;
      m.pend = null;
      detailInflight--;
      if (detailQueue.length && !detailTimer) detailTimer = setTimeout(pumpDetails, 0);
    });
  }

  /* ------------------------------------------------------------------ */
  /* Virtual tables                                                      */

  // Keyed rows: a row element stays with its entry while in view (so a
  // fading row keeps fading), and goes back to a small pool when not.
  class VTable {
    constructor(id, opts) {
      this.root = $(id);
      this.scroller = this.root.querySelector('.scroll');
      this.body = this.root.querySelector('.tbody');
      this.emptyEl = this.root.querySelector('.empty');
      this.opts = opts;
      this.items = [];
      this.live = new Map(); // key -> row element
      this.pool = [];
      this.rowH = 30;
      this.scroller.addEventListener('scroll', () => draw(), { passive: true });
    }

    shows(key) { return this.live.has(key); }

    // Drops every row element: the next render creates them anew (new columns).
    flush() {
      for (const el of this.live.values()) el.remove();
      this.live = new Map();
      this.pool = [];
    }

    setItems(items) {
      this.items = items;
      this.body.style.height = items.length * this.rowH + 'px';
    }

    measure() {
      this.top = this.scroller.scrollTop - this.body.offsetTop;
      this.height = this.scroller.clientHeight;
    }

    render(t) {
      const n = this.items.length;
      const a = Math.max(0, Math.floor(this.top / this.rowH) - OVERSCAN);
      const b = Math.min(n, Math.ceil((this.top + this.height) / this.rowH) + OVERSCAN);
      const next = new Map();
      for (let i = a; i < b; i++) {
        const item = this.items[i];
        const k = this.opts.key(item);
        let el = this.live.get(k);
        if (el) this.live.delete(k);
        else {
          el = this.pool.pop() || this.opts.create();
          el._v = null;
          el._flash = 0;
          el.classList.remove('gone');
          this.body.appendChild(el);
        }
        next.set(k, el);
        if (el._i !== i) {
          el._i = i;
          el.style.transform = 'translateY(' + i * this.rowH + 'px)';
        }
        const ver = item.v + ':' + labelsVer;
        if (el._v !== ver) {
          el._v = ver;
          this.opts.fill(el, item);
        }
        if (item.flash && el._flash !== item.flash) {
          el._flash = item.flash;
          if (t - item.flash < 800) flash(el);
        }
      }
      for (const el of this.live.values()) {
        el.remove();
        el._i = -1;
        if (this.pool.length < 200) this.pool.push(el);
      }
      this.live = next;
    }
  }

  let flashColor = '';
  function flash(el) {
    if (!el.animate) return;
    if (!flashColor) flashColor = getComputedStyle(document.documentElement).getPropertyValue('--flash').trim() || '#fff1b8';
    el.animate([{ backgroundColor: flashColor }, { backgroundColor: 'transparent' }], { duration: 1400, easing: 'ease-out' });
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function rowOf(cells) {
    const r = el('div', 'vrow');
    r.setAttribute('role', 'row');
    for (const c of cells) r.appendChild(el('div', c)).setAttribute('role', 'cell');
    return r;
  }

  // Compact JSON, cut for the cell; the tooltip has more.
  function jsonText(v) {
    let s;
    try { s = JSON.stringify(v); } catch (e) { s = String(v); }
    if (s === undefined) s = 'null';
    return s;
  }

  function cut(s, n) { return s.length > n ? s.slice(0, n) + '…' : s; }

  function setValue(cell, v) {
    const s = jsonText(v);
    cell.className = 'val t-' + (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
    cell.textContent = cut(s, MAX_TEXT);
    cell.title = cut(s, 4000);
  }

  function sessionLabel(id) {
    const x = S.sessions.get(id);
    return x && x.label ? x.label : '';
  }

  function setSessionCell(cell, id) {
    cell.textContent = '';
    const label = sessionLabel(id);
    if (label) cell.appendChild(el('span', 'slabel', label));
    cell.appendChild(el('span', 'sid', id));
    cell.title = label ? label + ' (' + id + ')' : id;
  }

  // The sessions table has a node column (each session's home) when any
  // session has a node, that is in cluster mode; rows are made for one
  // layout or the other (rebuild flushes them when it changes).
  let clustered = false;

  function fillSession(r, x) {
    const c = r._c;
    r.dataset.key = x.id;
    r.classList.toggle('gone', !!x.ended);
    if (x.label) {
      c.label.textContent = x.label;
      c.label.className = 'slabel';
    } else {
      c.label.textContent = x.info ? 'no label' : '…';
      c.label.className = 'nolabel';
    }
    c.label.title = x.label || '';
    c.id.textContent = x.id;
    c.id.title = x.id;
    if (c.node) {
      c.node.textContent = x.node || '';
      c.node.title = x.node ? 'home: ' + x.node + (x.node === selfNode ? ' (this page\'s node)' : '') : '';
      c.node.classList.toggle('here', !!x.node && x.node === selfNode);
    }
    c.names.textContent = fmt(x.names);
    c.props.textContent = fmt(x.props);
    c.groups.textContent = fmt(x.groups);
    const q = x.queued === null;
    // (in a cluster, a new session's home is not known until its details come)
    c.queued.textContent = q ? DASH : !x.info && c.node ? '…' : fmt(x.queued);
    c.queued.classList.toggle('na', q);
    c.queued.title = q ? 'queued on its home node' + (x.node ? ', ' + x.node : '') : '';
    fillLease(r, x, now());
  }

  function createSessionRow() {
    const names = clustered
      ? ['label', 'id', 'node', 'lease', 'names', 'props', 'groups', 'queued']
      : ['label', 'id', 'lease', 'names', 'props', 'groups', 'queued'];
    const cls = { label: 'slabel', id: 'mono idc', node: 'mono nodec', lease: 'lease' };
    const r = rowOf(names.map((n) => cls[n] || 'num'));
    r._c = {};
    names.forEach((n, i) => { r._c[n] = r.children[i]; });
    const lease = r._c.lease;
    const bar = el('span', 'lease-bar');
    bar.appendChild(el('i'));
    lease.appendChild(bar);
    lease.appendChild(el('span', 'lease-t'));
    return r;
  }

  function fillLease(r, x, t) {
    const lease = r._c.lease;
    const bar = lease.firstChild;
    const txt = lease.lastChild;
    let s;
    let frac;
    if (x.ended) {
      s = x.ended;
      frac = 0;
    } else if (x.remote) {
      s = DASH;
      frac = -1;
    } else if (!x.ttl) {
      s = '…';
      frac = 1;
    } else {
      const left = Math.max(0, x.expiresAt - t);
      frac = Math.min(1, left / (x.ttl * 1000));
      s = left >= 10000 ? Math.floor(left / 1000) + 's' : (left / 1000).toFixed(1) + 's';
      if (x.ttl >= 60 && left >= 60000) s = Math.floor(left / 60000) + 'm ' + String(Math.floor(left / 1000) % 60).padStart(2, '0') + 's';
    }
    if (txt.textContent !== s) txt.textContent = s;
    if (frac < 0) { // the lease is kept by the home node
      bar.className = 'lease-bar none';
      txt.className = 'lease-t na';
      lease.title = 'ttl ' + x.ttl + 's; the lease is kept by its home node' + (x.node ? ', ' + x.node : '');
      return;
    }
    txt.className = 'lease-t';
    bar.firstChild.style.transform = 'scaleX(' + frac.toFixed(3) + ')';
    bar.className = 'lease-bar' + (frac < 0.15 ? ' out' : frac < 0.4 ? ' low' : '');
    lease.title = x.ttl ? 'ttl ' + x.ttl + 's' : '';
  }

  // "2026-12-02 03:38:51 UTC", and how long ago as "up 3h 12m".
  function sinceText(since, t) {
    const ms = Date.parse(since);
    if (!Number.isFinite(ms)) return [since, ''];
    const at = new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
    const s = Math.max(0, Math.floor((t - ms) / 1000));
    const up = s < 60 ? s + 's'
      : s < 3600 ? Math.floor(s / 60) + 'm'
        : s < 86400 ? Math.floor(s / 3600) + 'h ' + Math.floor(s / 60) % 60 + 'm'
          : Math.floor(s / 86400) + 'd ' + Math.floor(s / 3600) % 24 + 'h';
    return [at, 'up ' + up];
  }

  function fillNode(r, n) {
    const c = r.children;
    const here = n.key === selfNode;
    r.dataset.key = n.key;
    c[0].textContent = n.key;
    c[0].classList.toggle('here', here);
    c[0].title = here ? n.key + ': serves this page' : n.key;
    c[1].textContent = n.url;
    c[1].title = n.url;
    c[2].textContent = n.sessions === null ? DASH : fmt(n.sessions);
    const [at, up] = sinceText(n.since, Date.now());
    c[3].firstChild.textContent = at;
    c[3].lastChild.textContent = up;
    c[3].title = 'joined ' + n.since + (up ? ' (' + up + ')' : '');
  }

  function createNodeRow() {
    const r = rowOf(['nname', 'mono', 'num', 'since']);
    r.children[3].appendChild(el('span', 'mono'));
    r.children[3].appendChild(el('span', 'up'));
    return r;
  }

  function fillName(r, n) {
    const c = r.children;
    r.dataset.key = n.key;
    c[0].textContent = n.key;
    c[0].title = n.key;
    setSessionCell(c[1], n.session);
    setValue(c[2], n.value);
  }

  function fillMulti(r, m) {
    const c = r.children;
    r.dataset.key = m.key;
    c[0].textContent = m.key;
    c[0].title = m.key;
    c[1].textContent = (m.uncertain ? '≈' : '') + fmt(m.count);
    const chips = c[2];
    chips.textContent = '';
    if (!m.holders) {
      chips.appendChild(el('span', 'pending', '…'));
      chips.title = '';
      return;
    }
    const tip = [];
    m.holders.forEach((h, i) => {
      const vs = jsonText(h.value);
      const label = sessionLabel(h.session);
      if (i < 40) tip.push((label ? label + ' ' : '') + h.session + ' = ' + cut(vs, 200));
      if (i >= MAX_CHIPS) return;
      const chip = el('span', 'chip');
      chip.appendChild(el('span', 'sid', label || h.session.slice(0, 8)));
      if (h.value !== null) {
        chip.appendChild(el('span', 'eq', ' = '));
        chip.appendChild(el('span', 'cv', cut(vs, 120)));
      }
      chips.appendChild(chip);
    });
    if (m.holders.length > MAX_CHIPS) chips.appendChild(el('span', 'more', '+' + fmt(m.holders.length - MAX_CHIPS)));
    if (m.holders.length > 40) tip.push('… ' + fmt(m.holders.length - 40) + ' more');
    chips.title = tip.join('\n');
  }

  const tables = {
    nodes: { name: 'nodes', noun: 'nodes', map: S.nodes, structural: true, unfiltered: true,
      vt: new VTable('t-nodes', { key: (n) => n.key, create: createNodeRow, fill: fillNode }) },
    sessions: { name: 'sessions', noun: 'sessions', map: S.sessions, structural: true,
      vt: new VTable('t-sessions', { key: (x) => x.id, create: createSessionRow, fill: fillSession }) },
    names: { name: 'names', noun: 'names', map: S.names, structural: true,
      vt: new VTable('t-names', { key: (n) => n.key, create: () => rowOf(['key', 'sess', 'val']), fill: fillName }) },
    props: { name: 'props', noun: 'properties', field: 'props', path: '/v1/props/', list: 'holders',
      map: S.props, structural: true,
      vt: new VTable('t-props', { key: (m) => m.key, create: () => rowOf(['key', 'num', 'chips']), fill: fillMulti }) },
    groups: { name: 'groups', noun: 'groups', field: 'groups', path: '/v1/groups/', list: 'members',
      map: S.groups, structural: true,
      vt: new VTable('t-groups', { key: (m) => m.key, create: () => rowOf(['key', 'num', 'chips']), fill: fillMulti }) },
  };

  /* ------------------------------------------------------------------ */
  /* Filtering, sorting, drawing                                         */

  const filterEl = $('filter');
  let query = '';

  function byKey(a, b) { return a.key < b.key ? -1 : a.key > b.key ? 1 : 0; }
  // Labelled sessions first, by label as a person reads it (edge-2 before
  // edge-10), then by id. Keys stay in the server's (byte) order.
  const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
  function bySession(a, b) {
    if (!a.label !== !b.label) return a.label ? -1 : 1;
    const c = a.label ? collator.compare(a.label, b.label) : 0;
    if (c) return c;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  }

  // Widths the sessions table's columns depend on: whether it has a node
  // column, and how wide its longest node name is (node names are ASCII,
  // the cell's font monospace, so characters times one's width).
  let nodeChars = 0;
  let monoCharPx = 0;

  function sessionColumns(all) {
    let longest = 0;
    for (const x of all) if (x.node && x.node.length > longest) longest = x.node.length;
    const want = longest > 0;
    const T = tables.sessions;
    if (want !== clustered) {
      clustered = want;
      T.vt.root.classList.toggle('clustered', want);
      T.vt.root.querySelector('.thead .col-node').hidden = !want;
      T.vt.flush();
    }
    if (want && longest !== nodeChars) {
      nodeChars = longest;
      if (!monoCharPx) {
        const probe = el('span', 'mono nodec', '0'.repeat(20));
        probe.style.cssText = 'position:absolute;visibility:hidden;white-space:nowrap';
        T.vt.body.appendChild(probe);
        monoCharPx = probe.getBoundingClientRect().width / 20 || 7.5;
        probe.remove();
      }
      T.vt.root.style.setProperty('--node-w', Math.ceil(longest * monoCharPx + 2) + 'px');
    }
  }

  function rebuild(T) {
    const all = [...T.map.values()];
    if (T.name === 'sessions') sessionColumns(all);
    let shown = all;
    if (query && !T.unfiltered) {
      shown = T.name === 'sessions'
        ? all.filter((x) => x.id.includes(query) || (x.ll && x.ll.includes(query)))
        : all.filter((e) => e.lk.includes(query));
    }
    shown.sort(T.name === 'sessions' ? bySession : byKey);
    T.vt.setItems(shown);
    const total = T.name === 'sessions' ? all.filter((x) => !x.ended).length : all.length;
    const tally = query && !T.unfiltered ? fmt(shown.length) + ' of ' + fmt(total) : fmt(total);
    $('n-' + T.name).textContent = tally;
    T.vt.emptyEl.textContent = shown.length ? '' : locked ? 'Needs an access token' : !loaded ? 'Loading…' : query && !T.unfiltered ? 'No ' + T.noun + ' match “' + filterEl.value + '”' : 'No ' + T.noun;
  }

  let frame = 0;
  function draw() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  function render() {
    frame = 0;
    const t = now();
    for (const T of Object.values(tables)) {
      if (T.structural) rebuild(T);
      T.structural = false;
    }
    for (const T of Object.values(tables)) T.vt.measure(); // all reads, then all writes
    for (const T of Object.values(tables)) T.vt.render(t);
    totals();
    if (connState === 'live') $('conn').title = 'following changes; last event #' + S.index;
    // holders and members for the keys in view
    for (const T of [tables.props, tables.groups]) {
      for (const k of T.vt.live.keys()) {
        const m = T.map.get(k);
        if (m && !m.holders) want(T, m);
      }
    }
  }

  function totals() {
    let sessions = 0;
    let queued = 0;
    let elsewhere = 0;
    for (const x of S.sessions.values()) {
      if (x.ended) continue;
      sessions++;
      if (x.queued === null) elsewhere++;
      else queued += x.queued;
    }
    let props = 0;
    for (const m of S.props.values()) props += m.count;
    let members = 0;
    for (const m of S.groups.values()) members += m.count;
    setText('c-sessions', fmt(sessions));
    setText('c-names', fmt(S.names.size));
    setText('c-props', fmt(props));
    setText('c-members', fmt(members));
    setText('c-queued', fmt(queued));
    const qt = elsewhere ? 'for the sessions homed on this node; ' + fmt(elsewhere) + ' other sessions\' queues are on their home nodes' : '';
    const qe = $('c-queued').parentNode;
    if (qe.title !== qt) qe.title = qt;
  }

  function setText(id, s) {
    const e = $(id);
    if (e.textContent !== s) e.textContent = s;
  }

  // The lease countdown ticks here, between listings.
  setInterval(() => {
    const t = now();
    const vt = tables.sessions.vt;
    for (const [id, r] of vt.live) {
      const x = S.sessions.get(id);
      if (x) fillLease(r, x, t);
    }
  }, 200);

  function setConn(state, why) {
    const c = $('conn');
    if (connState !== state) {
      connState = state;
      c.dataset.state = state;
      document.body.classList.toggle('stale', state !== 'live');
      $('conn-text').textContent = state === 'locked' ? 'token needed' : state;
    }
    c.title = why || (state === 'live' ? 'following changes; last event ' + S.index : '');
  }

  /* ------------------------------------------------------------------ */
  /* The filter box                                                      */

  function setQuery(v) {
    query = v.trim().toLowerCase();
    for (const T of Object.values(tables)) {
      T.structural = true;
      T.vt.scroller.scrollTop = 0;
    }
    history.replaceState(null, '', v ? '#q=' + encodeURIComponent(v) : location.pathname + location.search);
    draw();
  }

  filterEl.addEventListener('input', () => setQuery(filterEl.value));
  document.addEventListener('keydown', (e) => {
    // not while typing elsewhere (a token may well have a '/')
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
    if (e.key === '/' && !typing && !locked && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      filterEl.focus();
      filterEl.select();
    } else if (e.key === 'Escape' && document.activeElement === filterEl) {
      filterEl.value = '';
      setQuery('');
    }
  });
  if (location.hash.startsWith('#q=')) {
    try {
      filterEl.value = decodeURIComponent(location.hash.slice(3));
      query = filterEl.value.trim().toLowerCase();
    } catch (e) { /* a bad hash is no filter */ }
  }

  // The row height is the stylesheet's.
  const rh = parseFloat(getComputedStyle(document.documentElement).getPropertyValue('--row')) || 30;
  for (const T of Object.values(tables)) T.vt.rowH = rh;
  window.addEventListener('resize', draw);

  draw();
  sync();
})();
