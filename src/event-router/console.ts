/**
 * `GET /`: the operator console, one self-contained HTML page. It asks for API_TOKEN (kept in
 * sessionStorage only) and uses the operator API; every value is written with textContent, so
 * nothing from a signal can run as markup.
 */
export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chatops-trading console</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1f2328; }
  header { background: #1f2328; color: #fff; padding: 10px 16px; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
  header h1 { font-size: 16px; margin: 0; }
  main { padding: 16px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); }
  section { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 12px; }
  h2 { font-size: 14px; margin: 0 0 8px; }
  table { width: 100%; border-collapse: collapse; }
  td, th { text-align: left; padding: 4px; border-bottom: 1px solid #eee; vertical-align: top; }
  button { cursor: pointer; margin-right: 4px; }
  .muted { color: #656d76; } .error { color: #b42318; } code { font-size: 12px; }
  form label { display: block; margin: 4px 0; }
</style>
</head>
<body>
<header>
  <h1>chatops-trading</h1>
  <span id="state" class="muted">not connected</span>
  <form id="login"><input id="token" type="password" placeholder="API_TOKEN" autocomplete="off"> <button>Connect</button></form>
  <button id="pause">Pause</button><button id="resume">Resume</button>
</header>
<p id="message" class="error" style="padding:0 16px"></p>
<main>
  <section><h2>Awaiting approval</h2><table id="pending"></table></section>
  <section><h2>Portfolio</h2><div id="portfolio" class="muted">—</div><table id="positions"></table></section>
  <section><h2>Manual signal</h2>
    <form id="signal">
      <label>Symbol <input name="symbol" value="KRW-BTC" required></label>
      <label>Action <select name="action"><option>buy</option><option>sell</option><option>exit</option></select></label>
      <label>Size (quote) <input name="size" type="number" min="0" step="any"></label>
      <label>Confidence (0..1) <input name="confidence" type="number" min="0" max="1" step="0.01"></label>
      <button>Send</button>
    </form>
  </section>
  <section><h2>Recent proposals</h2><table id="recent"></table></section>
</main>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem('chatops-token') || '';
  const say = (text) => { $('message').textContent = text || ''; };
  async function api(method, path, body) {
    const res = await fetch(path, { method, headers: { authorization: 'Bearer ' + token, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw Object.assign(new Error((data.error || res.status) + ': ' + (data.message || '')), { data });
    return data;
  }
  // A decision is made as the token's principal: a named token needs no name. Only the shared
  // API_TOKEN asks for one (the API answers 400 on the field by), recorded as the approver's label.
  async function decide(path, body) {
    try { return await api('POST', path, body); } catch (e) {
      if (!(e.data && Array.isArray(e.data.issues) && e.data.issues.some((i) => i.path === 'by'))) throw e;
      const who = prompt('Your name (the shared API token records it as the approver)') || '';
      if (who) return api('POST', path, { ...body, by: who });
    }
  }
  const cell = (tr, text) => { const td = document.createElement('td'); td.textContent = text; tr.appendChild(td); return td; };
  const button = (td, label, fn) => { const b = document.createElement('button'); b.textContent = label; b.onclick = fn; td.appendChild(b); };
  const fmt = (n) => Number(n).toLocaleString('en-US', { maximumFractionDigits: 8 });
  async function refresh() {
    if (!token) return;
    try {
      const [state, portfolio, pending, recent] = await Promise.all([
        api('GET', '/api/state'), api('GET', '/api/portfolio'), api('GET', '/api/proposals?state=awaiting-approval'), api('GET', '/api/proposals?limit=20'),
      ]);
      $('state').textContent = state.mode + ' · ' + state.tradingState + (state.paused ? ' · paused' : '');
      $('portfolio').textContent = 'cash ' + fmt(portfolio.cash) + ' · equity ' + fmt(portfolio.equity) + ' · daily PnL ' + fmt(portfolio.dailyPnl) + ' · losses in a row ' + portfolio.consecutiveLosses;
      const pos = $('positions'); pos.replaceChildren();
      for (const p of portfolio.positions) { const tr = document.createElement('tr'); cell(tr, p.symbol); cell(tr, fmt(p.quantity)); cell(tr, '@ ' + fmt(p.avgPrice)); pos.appendChild(tr); }
      const pend = $('pending'); pend.replaceChildren();
      for (const p of pending.proposals) {
        const tr = document.createElement('tr');
        cell(tr, p.side.toUpperCase() + ' ' + p.symbol); cell(tr, fmt(p.notional)); cell(tr, 'conf ' + p.confidence);
        cell(tr, 'until ' + new Date(p.deadline).toLocaleTimeString() + (p.requiredApprovals > 1 ? ' · ' + p.approvals.length + '/' + p.requiredApprovals : ''));
        const td = cell(tr, '');
        button(td, 'Approve', () => act(() => decide('/api/proposals/' + p.id + '/approve', {})));
        button(td, 'Reject', () => act(() => decide('/api/proposals/' + p.id + '/reject', { reason: 'rejected in the console' })));
        pend.appendChild(tr);
      }
      const rec = $('recent'); rec.replaceChildren();
      for (const p of recent.proposals) {
        const tr = document.createElement('tr');
        cell(tr, new Date(p.createdAt).toLocaleTimeString()); cell(tr, p.side.toUpperCase() + ' ' + p.symbol); cell(tr, fmt(p.notional)); cell(tr, p.state);
        cell(tr, p.outcome ? p.outcome.reason : '');
        rec.appendChild(tr);
      }
      say('');
    } catch (e) { say(String(e.message || e)); }
  }
  async function act(fn) { try { await fn(); say(''); } catch (e) { say(String(e.message || e)); } refresh(); }
  $('login').onsubmit = (e) => { e.preventDefault(); token = $('token').value.trim(); sessionStorage.setItem('chatops-token', token); refresh(); };
  $('pause').onclick = () => act(() => decide('/api/pause', {}));
  $('resume').onclick = () => act(() => decide('/api/resume', {}));
  $('signal').onsubmit = (e) => {
    e.preventDefault();
    const f = new FormData(e.target); const body = { symbol: f.get('symbol'), action: f.get('action') };
    if (f.get('size')) body.size = Number(f.get('size'));
    if (f.get('confidence')) body.confidence = Number(f.get('confidence'));
    act(() => api('POST', '/api/signals', body));
  };
  refresh(); setInterval(refresh, 3000);
})();
</script>
</body>
</html>
`;
