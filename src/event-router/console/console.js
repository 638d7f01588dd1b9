// The operator console. Plain browser JavaScript, no build step. The token lives in
// sessionStorage only and goes out in the Authorization header, never in a URL; the live stream
// is read with fetch (EventSource cannot send the header). Every value is written with
// textContent or as SVG text, never parsed as markup. Decisions are made as the token's principal.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'chatops-console-token';
  const SVG = 'http://www.w3.org/2000/svg';

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let me = null;
  let stream = null;
  /** The server's `retry:` (2 s); failures in a row double it up to 15 s. */
  let baseRetryMs = 2000;
  let retryMs = baseRetryMs;
  let machine = null;
  let selected = null;
  const pending = new Map();
  const recent = new Map();
  /** The last decision's outcome per pending proposal: its card may be redrawn before the answer comes. */
  const outcomes = new Map();
  /** The newest version seen of each proposal (it survives reconnects): nothing older is shown after it. */
  const ranks = new Map();
  let awaitingTotal = 0;
  /** No byte for this long (the server sends a heartbeat every 15 s): the connection is dead. */
  const SILENCE_MS = 45000;
  let signals = [];
  let tradingState = null;
  let quote = '';

  // ---------- small helpers ----------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const num = (n, digits = 8) => (n === null || n === undefined || Number.isNaN(Number(n)) ? '—' : Number(n).toLocaleString('en-US', { maximumFractionDigits: digits }));
  const money = (n) => num(n, 2);
  const time = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '—');
  const duration = (sec) => {
    const s = Math.max(0, Math.round(sec));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + String(s % 60).padStart(2, '0') + ' s';
    return Math.floor(s / 3600) + ' h ' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + ' min';
  };
  function say(text, kind) {
    const m = $('message');
    m.textContent = text || '';
    m.className = 'message' + (text ? ' ' + (kind || 'error') : '');
  }
  const errorText = (e) => (e && e.data && e.data.error ? e.data.error + ': ' + (e.data.message || '') : String((e && e.message) || e));

  async function api(method, path, body) {
    const res = await fetch(path, {
      method, cache: 'no-store',
      headers: { authorization: 'Bearer ' + token, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw Object.assign(new Error(data.message || 'HTTP ' + res.status), { status: res.status, data });
    return data;
  }

  /** The decider fields: a named token is its own name; the shared token adds the typed name as a label. */
  function who() {
    const label = $('label').value.trim();
    if (me && me.labelRequired && !label) {
      $('label').focus();
      throw new Error('enter your name first: the shared API token records it with the decision');
    }
    return label && me && me.shared ? { by: label } : {};
  }

  // ---------- sign in ----------
  $('login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const given = $('token').value.trim();
    if (!given) return;
    const before = token;
    token = given;
    try {
      const whoami = await api('GET', '/api/whoami');
      sessionStorage.setItem(TOKEN_KEY, given);
      $('token').value = '';
      say('');
      start(whoami);
    } catch (e) {
      token = before;
      say(e.status === 401 ? 'That token was refused (401): nothing was changed. Check the token and try again.' : 'Could not sign in: ' + errorText(e));
    }
  });
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    token = '';
    me = null;
    if (stream) stream.abort();
    stream = null;
    $('desk').hidden = true;
    $('logout').hidden = true;
    for (const id of ['token', 'connect']) $(id).hidden = false;
    document.querySelector('label[for=token]').hidden = false;
    $('who').textContent = '';
    setLink('not connected', '');
  });

  function start(whoami) {
    me = whoami;
    $('who').textContent = 'signed in as ' + whoami.principal + (whoami.shared ? ' (shared token)' : '');
    $('label-row').hidden = !whoami.labelRequired;
    $('logout').hidden = false;
    for (const id of ['token', 'connect']) $(id).hidden = true;
    document.querySelector('label[for=token]').hidden = true;
    $('desk').hidden = false;
    if (stream) stream.abort();
    retryMs = baseRetryMs;
    connect();
  }

  function setLink(text, kind) {
    $('link').textContent = text;
    $('link').className = 'link' + (kind ? ' ' + kind : '');
  }

  // ---------- the live stream ----------
  async function connect() {
    const ctrl = new AbortController();
    stream = ctrl;
    setLink('connecting…', '');
    try {
      const res = await fetch('/api/events', { headers: { authorization: 'Bearer ' + token, accept: 'text/event-stream' }, cache: 'no-store', signal: ctrl.signal });
      if (res.status === 401) {
        say('The token is no longer accepted (401): sign in again.');
        $('logout').click();
        return;
      }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      let watchdog = setTimeout(() => ctrl.abort(), SILENCE_MS);
      for (;;) {
        const { value, done } = await reader.read().finally(() => clearTimeout(watchdog));
        if (done) break;
        watchdog = setTimeout(() => ctrl.abort(), SILENCE_MS);
        buffer += value.replace(/\r\n?/g, '\n');
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          onFrame(frame);
        }
      }
      throw new Error('the stream ended');
    } catch {
      // Aborted by sign-out or a newer connection: nothing to do. Aborted by the watchdog: reconnect.
      if (stream !== ctrl) return;
      setLink('reconnecting in ' + Math.round(retryMs / 1000) + ' s', 'down');
      setTimeout(() => { if (stream === ctrl) connect(); }, retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    }
  }

  function onFrame(frame) {
    let event = 'message';
    const data = [];
    for (const line of frame.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry' && /^\d+$/.test(value)) baseRetryMs = Number(value);
    }
    if (data.length === 0) return;
    let payload;
    try { payload = JSON.parse(data.join('\n')); } catch { return; }
    if (event === 'snapshot') onSnapshot(payload);
    else if (event === 'proposal') onProposal(payload);
    else if (event === 'signal') onSignal(payload);
    else if (event === 'state') renderState(payload);
    else if (event === 'portfolio') renderPortfolio(payload);
  }

  async function onSnapshot(s) {
    retryMs = baseRetryMs;
    setLink('live', 'live');
    // The snapshot is the truth as of now: views arriving later are applied on top if newer.
    pending.clear();
    for (const p of s.pending) if (fresh(p)) pending.set(p.id, p);
    awaitingTotal = s.awaitingApproval;
    signals = s.signals;
    renderState(s.state);
    renderPortfolio(s.portfolio);
    renderPending();
    renderSignals();
    try {
      if (!machine) machine = (await api('GET', '/api/machines/proposal')).machine;
      const r = await api('GET', '/api/proposals?limit=20');
      recent.clear();
      // Newest first in the answer; the map keeps oldest first.
      for (const p of r.proposals.slice().reverse()) if (!pending.has(p.id) && fresh(p)) recent.set(p.id, p);
      renderRecent();
      if (selected) select(selected);
    } catch (e) { say('Could not load recent proposals: ' + errorText(e)); }
  }

  // The answer to a decision, a list and the stream race each other: an older view never replaces a newer one.
  const rank = (p) => p.history.length * 1000 + p.approvals.length;
  function fresh(p) {
    const seen = ranks.get(p.id);
    if (seen !== undefined && seen > rank(p)) return false;
    ranks.set(p.id, rank(p));
    if (ranks.size > 5000) ranks.delete(ranks.keys().next().value);
    return true;
  }
  function onProposal(p) {
    if (!fresh(p)) return;
    const known = pending.get(p.id) || recent.get(p.id);
    // What approving does to the price never changes; answers to decisions do not carry it.
    if (!p.priceOnApproval && known && known.priceOnApproval) p = { ...p, priceOnApproval: known.priceOnApproval };
    if (p.state === 'awaiting-approval') {
      if (!pending.has(p.id)) awaitingTotal++;
      pending.set(p.id, p);
      recent.delete(p.id);
    }
    else {
      if (pending.delete(p.id)) awaitingTotal = Math.max(0, awaitingTotal - 1);
      outcomes.delete(p.id);
      recent.delete(p.id);
      recent.set(p.id, p);
      while (recent.size > 20) recent.delete(recent.keys().next().value);
    }
    renderPending();
    renderRecent();
    if (selected === p.id) renderDetail(p);
  }

  function onSignal(s) {
    const i = s.id ? signals.findIndex((x) => x.id === s.id) : -1;
    if (i >= 0) signals[i] = s;
    else signals.unshift(s);
    signals = signals.slice(0, 50);
    renderSignals();
  }

  // ---------- trading state ----------
  function renderState(s) {
    tradingState = s;
    const words = { active: 'Active', reducing: 'Exits only (reducing)', halted: 'HALTED' };
    $('trading-state').textContent = (words[s.tradingState] || s.tradingState) + (s.paused ? ' · paused' : '');
    const parts = [s.mode + ' mode'];
    if (s.mode === 'live') parts.push(s.armedUntil ? 'armed until ' + time(s.armedUntil) : 'disarmed (dry runs only)');
    if (s.tradingStateReason) parts.push(s.tradingStateReason);
    if (s.liquidation) parts.push('liquidation standing since ' + time(s.liquidation.since) + ' by ' + s.liquidation.by);
    $('trading-detail').textContent = parts.join(' · ');
    $('pause').disabled = s.paused;
    $('resume').disabled = !s.paused;
    $('halt').disabled = s.tradingState === 'halted';
    $('reducing').disabled = s.tradingState === 'reducing';
    $('activate').disabled = s.tradingState === 'active';
  }

  async function command(button, run, done) {
    button.disabled = true;
    try {
      const out = await run();
      say(done(out), 'ok');
      if (out && out.tradingState !== undefined) renderState(out);
      else if (out && out.state && out.state.tradingState !== undefined) renderState(out.state);
    } catch (e) {
      say(errorText(e));
    } finally {
      button.disabled = false;
      // The state buttons are enabled by what the state allows.
      if (tradingState) renderState(tradingState);
    }
  }
  $('pause').addEventListener('click', (e) => command(e.currentTarget, () => api('POST', '/api/pause', who()), () => 'Paused: new signals are recorded but make no proposals.'));
  $('resume').addEventListener('click', (e) => command(e.currentTarget, () => api('POST', '/api/resume', who()), () => 'Resumed.'));
  $('halt').addEventListener('click', (e) => command(e.currentTarget,
    () => api('POST', '/api/trading-state', { state: 'halted', reason: 'kill switch in the console', ...who() }),
    (r) => 'Trading halted: nothing goes out; ' + r.cancelled + ' proposal(s) cancelled' + (r.cancelFailed ? ', ' + r.cancelFailed + ' could not be cancelled yet' : '') + '.'));
  $('reducing').addEventListener('click', (e) => command(e.currentTarget,
    () => api('POST', '/api/trading-state', { state: 'reducing', reason: 'exits only, set in the console', ...who() }), () => 'Exits only: entries are refused.'));
  $('activate').addEventListener('click', (e) => command(e.currentTarget,
    () => api('POST', '/api/trading-state', { state: 'active', reason: 'set active in the console', ...who() }), () => 'Trading is active; breakers trip again only if today gets worse.'));
  $('liquidate').addEventListener('click', () => { $('liquidate-confirm').hidden = false; $('liquidate-yes').focus(); });
  $('liquidate-no').addEventListener('click', () => { $('liquidate-confirm').hidden = true; });
  $('liquidate-yes').addEventListener('click', (e) => command(e.currentTarget, async () => {
    $('liquidate-confirm').hidden = true;
    return api('POST', '/api/liquidate', who());
  }, (r) => 'Liquidation ordered: ' + r.started.length + ' sell(s) started' + (r.failed && r.failed.length ? ', ' + r.failed.length + ' could not start yet (retried)' : '') + '.'));

  // ---------- pending proposals ----------
  const sideWord = (p) => (p.intent === 'liquidate' ? 'LIQUIDATE' : p.side.toUpperCase());
  function fact(dl, name, value, cls) {
    dl.append(el('dt', { text: name }), el('dd', { class: cls, text: value }));
  }
  function verdictText(risk) {
    if (!risk) return 'not assessed yet';
    if (risk.kind === 'allow') return 'allow';
    if (risk.kind === 'cap') return 'cap to ' + money(risk.notional) + ': ' + risk.reason;
    return risk.kind + ': ' + risk.reason;
  }
  function priceLine(p) {
    const rule = p.priceOnApproval;
    if (!rule) return '';
    if (rule.kind === 'exit_at_market') return 'An exit goes out at the fresh market price, however far it moved.';
    const head = 'Approval needs a fresh market price within ' + rule.maxDriftPct + '% of this one';
    return head + '; without market data ' + (p.priceSource === 'signal' ? 'the signal\'s' : 'this') + ' price stands until ' + time(rule.standsUntil) + '.';
  }

  function renderPending() {
    const box = $('pending');
    const list = [...pending.values()].sort((a, b) => Date.parse(a.deadline) - Date.parse(b.deadline));
    const total = Math.max(awaitingTotal, list.length);
    $('pending-count').textContent = String(total);
    $('pending-more').hidden = total <= list.length;
    $('pending-more').textContent = 'Showing the newest ' + list.length + ' of ' + total + '; the rest are in GET /api/proposals?state=awaiting-approval.';
    $('pending-empty').hidden = list.length > 0;
    const keep = new Map([...box.children].map((c) => [c.dataset.id, c]));
    list.forEach((p, i) => {
      const old = keep.get(p.id);
      const card = buildCard(p, old);
      keep.delete(p.id);
      if (old && old !== card) old.replaceWith(card);
      // Moving a node that is already in place would take the focus from someone typing in it.
      if (box.children[i] !== card) box.insertBefore(card, box.children[i] || null);
    });
    for (const c of keep.values()) c.remove();
    tick();
  }

  function buildCard(p, old) {
    const version = String(rank(p));
    if (old && old.dataset.version === version) return old;
    const reasonValue = old ? old.querySelector('input[name=reason]').value : '';
    const side = sideWord(p);
    const card = el('article', { class: 'card ' + p.side + (selected === p.id ? ' selected' : ''), 'aria-label': side + ' ' + p.symbol + ' ' + p.id });
    card.dataset.id = p.id;
    card.dataset.version = version;
    card.dataset.deadline = p.deadline;
    card.append(el('h3', { text: side + ' ' + p.symbol }), el('div', { class: 'id', text: p.id }));

    const dl = el('dl', { class: 'facts' });
    const qty = p.exactQuantity !== null && p.exactQuantity !== undefined ? p.exactQuantity : null;
    fact(dl, 'Size', money(p.notional) + ' ' + quote + (p.requestedNotional !== p.notional ? ' (asked ' + money(p.requestedNotional) + ')' : '') + (qty !== null ? ' · qty ' + qty : '') + (p.sizeFactor < 1 ? ' · approved at ' + Math.round(p.sizeFactor * 100) + '% so far' : ''));
    fact(dl, 'Price', num(p.price) + ' ' + quote + ' · ' + (p.priceSource === 'signal' ? 'from the signal (no fresh market data)' : 'market quote'));
    fact(dl, 'Price on approval', priceLine(p));
    fact(dl, 'Confidence', Math.round(p.confidence * 100) + '%');
    fact(dl, 'Risk', verdictText(p.risk), 'verdict-' + (p.risk ? p.risk.kind : 'none'));
    const need = p.requiredApprovals;
    fact(dl, 'Approvals', p.approvals.length + ' of ' + need + (p.approvals.length ? ' · ' + p.approvals.map((a) => a.by + (a.label ? ' (' + a.label + ')' : '') + (a.sizeFactor < 1 ? ' at ' + Math.round(a.sizeFactor * 100) + '%' : '')).join(', ') : ''));
    const cd = el('dd', { class: 'countdown', 'data-deadline': p.deadline });
    dl.append(el('dt', { text: 'Time left' }), cd);
    card.append(dl);

    const reasons = [...p.reasons, ...(p.risk ? p.risk.reasons : []), ...(p.approval ? p.approval.reasons : [])];
    if (reasons.length) {
      const ul = el('ul', { class: 'reasons', 'aria-label': 'Reasons' });
      for (const r of reasons) ul.append(el('li', { text: r.message + ' (' + r.code + ')' }));
      card.append(ul);
    }
    if (p.explanation) card.append(el('p', { class: 'explanation', text: p.explanation }));

    const partialOk = p.approval && p.approval.allowPartial && p.sizeFactor > 0.5;
    const reason = el('input', { name: 'reason', 'aria-label': 'Reject reason for ' + p.id, placeholder: 'reason to reject (optional)', maxlength: 500 });
    reason.value = reasonValue;
    const line = el('p', { class: 'outcome', role: 'status', text: outcomes.get(p.id) || '' });
    const decide = el('div', { class: 'decide' },
      el('button', { type: 'button', class: 'primary', onclick: (e) => approve(p, undefined, e.currentTarget) }, 'Approve'),
      el('button', { type: 'button', disabled: !partialOk, title: partialOk ? 'approve half the size' : 'this proposal may only be approved at its full size', onclick: (e) => approve(p, 0.5, e.currentTarget) }, 'Approve 50%'),
      reason,
      el('button', { type: 'button', class: 'danger', onclick: (e) => reject(p, reason.value.trim(), e.currentTarget) }, 'Reject'),
    );
    card.append(decide, line);
    card.addEventListener('click', (e) => { if (!e.target.closest('button, input')) select(p.id); });
    return card;
  }

  function setOutcome(id, text) {
    outcomes.set(id, text);
    for (const c of $('pending').children) if (c.dataset.id === id) c.querySelector('.outcome').textContent = text;
  }

  async function approve(p, factor, button) {
    button.disabled = true;
    try {
      const r = await api('POST', '/api/proposals/' + encodeURIComponent(p.id) + '/approve', { ...(factor ? { sizeFactor: factor } : {}), ...who() });
      let text;
      if (!r.approvalCounted) text = 'Your approval was already counted: a different person must approve.';
      else if (r.state === 'awaiting-approval') text = 'Approval counted (' + r.approvals.length + ' of ' + r.requiredApprovals + '): another person must approve.';
      else text = 'Approved' + (factor ? ' at ' + Math.round(factor * 100) + '%' : '') + ': now ' + r.state + '.';
      setOutcome(p.id, text);
      say(p.symbol + ' ' + p.id + ': ' + text, 'ok');
      onProposal(r);
    } catch (e) {
      setOutcome(p.id, 'Not approved: ' + errorText(e));
      say(p.symbol + ' ' + p.id + ': not approved: ' + errorText(e));
    } finally {
      button.disabled = false;
    }
  }

  async function reject(p, reason, button) {
    button.disabled = true;
    try {
      const r = await api('POST', '/api/proposals/' + encodeURIComponent(p.id) + '/reject', { ...(reason ? { reason } : {}), ...who() });
      say(p.symbol + ' ' + p.id + ': rejected' + (reason ? ' (' + reason + ')' : '') + '.', 'ok');
      onProposal(r);
    } catch (e) {
      setOutcome(p.id, 'Not rejected: ' + errorText(e));
      say(p.symbol + ' ' + p.id + ': not rejected: ' + errorText(e));
    } finally {
      button.disabled = false;
    }
  }

  // Countdowns and mark ages move every second without asking the server.
  function tick() {
    const now = Date.now();
    for (const cd of document.querySelectorAll('.countdown[data-deadline]')) {
      const left = (Date.parse(cd.dataset.deadline) - now) / 1000;
      cd.textContent = left > 0 ? duration(left) + ' (until ' + time(cd.dataset.deadline) + ')' : 'deadline passed: rejecting';
      cd.classList.toggle('soon', left < 60);
    }
    for (const td of document.querySelectorAll('td[data-marked-at]')) {
      const age = (now - Date.parse(td.dataset.markedAt)) / 1000;
      const stale = age > Number(td.dataset.maxAge);
      td.textContent = duration(age) + (stale ? ' · stale' : '');
      td.classList.toggle('stale', stale);
    }
  }
  setInterval(tick, 1000);

  // ---------- portfolio ----------
  function renderPortfolio(pf) {
    quote = pf.quoteCurrency;
    const q = ' ' + pf.quoteCurrency;
    const sum = $('portfolio-summary');
    sum.replaceChildren();
    const item = (name, value, cls) => sum.append(el('div', {}, el('dt', { text: name }), el('dd', { class: cls, text: value })));
    item('Cash', money(pf.cash) + q);
    item('Equity', money(pf.equity) + q);
    item('Daily PnL', money(pf.dailyPnl) + q, pf.dailyPnl < 0 ? 'neg' : pf.dailyPnl > 0 ? 'pos' : '');
    item('Realised PnL', money(pf.realizedPnl) + q, pf.realizedPnl < 0 ? 'neg' : pf.realizedPnl > 0 ? 'pos' : '');
    item('Losses in a row', String(pf.consecutiveLosses));
    item('Trading day', pf.tradingDay);
    const body = $('positions');
    body.replaceChildren();
    for (const x of pf.positions) {
      const pnl = (x.markPrice - x.avgPrice) * x.quantity;
      const age = x.markedAt
        ? el('td', { 'data-marked-at': x.markedAt, 'data-max-age': pf.markMaxAgeSeconds })
        : el('td', { class: 'stale', text: 'never marked' });
      body.append(el('tr', {},
        el('th', { scope: 'row', text: x.symbol }),
        el('td', { class: 'num', text: x.exactQuantity }),
        el('td', { class: 'num', text: num(x.avgPrice) }),
        el('td', { class: 'num', text: num(x.markPrice) }),
        el('td', { class: 'num', text: money(x.marketValue) }),
        el('td', { class: 'num ' + (pnl < 0 ? 'neg' : pnl > 0 ? 'pos' : ''), text: money(pnl) }),
        age));
    }
    $('positions-empty').hidden = pf.positions.length > 0;
    tick();
  }

  // ---------- signals and recent proposals ----------
  function renderSignals() {
    const body = $('signals');
    body.replaceChildren();
    for (const s of signals) {
      const what = [s.action ? s.action.toUpperCase() : '', s.symbol || '', s.size !== undefined ? 'size ' + money(s.size) : '', s.price !== undefined ? '@ ' + num(s.price) : '', s.confidence !== undefined ? 'conf ' + s.confidence : ''].filter(Boolean).join(' ');
      let outcome = s.status;
      if (s.status === 'proposed' && s.proposalId) outcome = 'proposed → ' + s.proposalId;
      if (s.status === 'dropped' && s.code) outcome = 'dropped: ' + s.code + (s.reason ? ' — ' + s.reason : '');
      if (s.status === 'duplicate') outcome = 'duplicate of ' + s.duplicateOf;
      const tr = el('tr', {}, el('td', { text: time(s.at) }), el('td', { text: s.source }), el('td', { text: what }), el('td', { class: 'status-' + s.status, text: outcome }));
      if (s.proposalId) {
        tr.className = 'clickable';
        tr.addEventListener('click', () => select(s.proposalId));
      }
      body.append(tr);
    }
  }

  function outcomeText(p) {
    if (p.fill) return 'filled ' + p.fill.exact.quantity + ' @ ' + p.fill.exact.price + (p.order && p.order.dryRun ? ' (dry run)' : '');
    if (p.outcome) return p.outcome.code + ': ' + p.outcome.reason;
    return '';
  }

  function renderRecent() {
    const body = $('recent');
    body.replaceChildren();
    for (const p of [...recent.values()].reverse()) {
      const tr = el('tr', { class: 'clickable' },
        el('td', { text: time(p.createdAt) }),
        el('td', { text: sideWord(p) + ' ' + p.symbol + ' ' + money(p.notional) + ' · ' + p.id }),
        el('td', { text: p.state }),
        el('td', { text: outcomeText(p) }));
      tr.addEventListener('click', () => select(p.id));
      body.append(tr);
    }
  }

  // ---------- the selected proposal ----------
  async function select(id) {
    selected = id;
    for (const c of $('pending').children) c.classList.toggle('selected', c.dataset.id === id);
    try {
      const p = await api('GET', '/api/proposals/' + encodeURIComponent(id));
      if (selected !== id) return;
      const known = pending.get(id) || recent.get(id);
      renderDetail(known && rank(known) > rank(p) ? known : p);
    } catch (e) {
      say('Could not load ' + id + ': ' + errorText(e));
    }
  }

  async function renderDetail(p) {
    $('detail-empty').hidden = true;
    $('detail').hidden = false;
    $('detail-id').textContent = p.id;
    $('detail-summary').textContent = sideWord(p) + ' ' + p.symbol + ' · ' + money(p.notional) + ' · now ' + p.state;
    drawDiagram(p);
    const body = $('detail-history');
    body.replaceChildren();
    const rows = [
      ...p.history.map((h) => ({ at: h.at, what: h.state, by: h.by || '', why: h.reason || '' })),
      ...p.approvals.map((a) => ({ at: a.at, what: 'approval', by: a.by + (a.label ? ' (' + a.label + ')' : ''), why: 'size ' + Math.round(a.sizeFactor * 100) + '%' })),
    ].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    for (const r of rows) body.append(el('tr', {}, el('td', { text: time(r.at) }), el('td', { text: r.what }), el('td', { text: r.by }), el('td', { text: r.why })));
    $('detail-outcome').textContent = outcomeText(p);
    try {
      const d = await api('GET', '/api/proposals/' + encodeURIComponent(p.id) + '/diagram');
      if (selected === p.id) $('detail-mermaid').textContent = d.mermaid;
    } catch (e) { $('detail-mermaid').textContent = errorText(e); }
  }

  // The machine's states in lifecycle order on top, its exits below; the proposal's path drawn over it.
  const LAYOUT = { pending: [0, 0], 'awaiting-approval': [1, 0], approved: [2, 0], executing: [3, 0], settled: [4, 0], rejected: [1, 1], 'timed-out': [2, 1], failed: [3, 1] };
  function drawDiagram(p) {
    const box = $('diagram');
    box.replaceChildren();
    if (!machine) return;
    const W = 118, H = 30, GX = 132, GY = 78;
    const pos = {};
    let extra = 0;
    for (const s of machine.states) pos[s.name] = LAYOUT[s.name] || [extra++, 2];
    const rows = Math.max(...Object.values(pos).map((xy) => xy[1])) + 1;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + (GX * 5 + 10) + ' ' + (GY * rows + 10));
    const visited = p.history.map((h) => h.state);
    box.setAttribute('aria-label', 'Lifecycle of ' + p.id + ': ' + visited.join(' → '));
    const taken = new Set();
    for (let i = 1; i < visited.length; i++) taken.add(visited[i - 1] + '>' + visited[i]);
    const centre = (name) => [pos[name][0] * GX + 8 + W / 2, pos[name][1] * GY + 8 + H / 2];
    const defs = document.createElementNS(SVG, 'defs');
    for (const [id, colour] of [['arrow', '#c6ccd2'], ['arrow-taken', '#1d4ed8']]) {
      const m = document.createElementNS(SVG, 'marker');
      for (const [k, v] of [['id', id], ['viewBox', '0 0 10 10'], ['refX', '10'], ['refY', '5'], ['markerWidth', '7'], ['markerHeight', '7'], ['orient', 'auto-start-reverse']]) m.setAttribute(k, v);
      const path = document.createElementNS(SVG, 'path');
      path.setAttribute('d', 'M 0 0 L 10 5 L 0 10 z');
      path.setAttribute('fill', colour);
      m.append(path);
      defs.append(m);
    }
    svg.append(defs);
    for (const s of machine.states) {
      for (const t of s.transitions) {
        if (t.target === s.name || !pos[t.target]) continue;
        const [x1, y1] = centre(s.name), [x2, y2] = centre(t.target);
        // Stop at the target box's edge.
        const dx = x2 - x1, dy = y2 - y1;
        const k = Math.min(Math.abs(dx) > 0 ? (W / 2) / Math.abs(dx) : Infinity, Math.abs(dy) > 0 ? (H / 2) / Math.abs(dy) : Infinity);
        const line = document.createElementNS(SVG, 'line');
        const isTaken = taken.has(s.name + '>' + t.target);
        for (const [a, v] of [['x1', x1 + dx * k], ['y1', y1 + dy * k], ['x2', x2 - dx * k], ['y2', y2 - dy * k]]) line.setAttribute(a, String(v));
        line.setAttribute('class', 'edge' + (isTaken ? ' taken' : ''));
        line.setAttribute('marker-end', 'url(#' + (isTaken ? 'arrow-taken' : 'arrow') + ')');
        svg.append(line);
      }
    }
    for (const s of machine.states) {
      const g = document.createElementNS(SVG, 'g');
      g.setAttribute('class', 'state' + (s.name === p.state ? ' current' : visited.includes(s.name) ? ' visited' : ''));
      const rect = document.createElementNS(SVG, 'rect');
      const [cx, cy] = centre(s.name);
      for (const [a, v] of [['x', cx - W / 2], ['y', cy - H / 2], ['width', W], ['height', H], ['rx', s.final ? 14 : 4]]) rect.setAttribute(a, String(v));
      const text = document.createElementNS(SVG, 'text');
      text.setAttribute('x', String(cx));
      text.setAttribute('y', String(cy + 4));
      text.setAttribute('text-anchor', 'middle');
      text.textContent = s.name;
      g.append(rect, text);
      svg.append(g);
    }
    box.append(svg);
  }

  // ---------- start ----------
  if (token) {
    api('GET', '/api/whoami').then(start, (e) => {
      if (e.status === 401) sessionStorage.removeItem(TOKEN_KEY);
      token = '';
      say(e.status === 401 ? 'The saved token is no longer accepted: sign in again.' : 'Could not reach the service: ' + errorText(e));
    });
  }
})();
