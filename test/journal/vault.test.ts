import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Dec } from '../../src/amounts';
import { recordLines, recountJournal } from '../../src/journal/ledger';
import { TradeLog, type JournalEntry } from '../../src/journal/trade-log';
import { ProposalArchive } from '../../src/journal/tracker';
import { rebuildVault, Vault, VaultFold, VAULT_STATE_FILE, type VaultLog } from '../../src/journal/vault';
import { renderDailyNote, renderProposalNote, dayEntry } from '../../src/journal/vault-notes';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import type { ProposalView } from '../../src/proposal/view';
import { noteLinks as links, parseFrontMatter } from '../support/front-matter';

// --- Fixtures -----------------------------------------------------------------------------------------

const DAY = '2026-11-26';
const at = (hms: string) => `${DAY}T${hms}.000Z`;

function view(overrides: Partial<ProposalView> = {}): ProposalView {
  return {
    id: 'p-20261126-00000000000a', signalId: 'sig-20261126-00000000000a', state: 'settled', symbol: 'BTC/KRW', side: 'buy', intent: 'buy',
    notional: 500000, requestedNotional: 500000, quantity: null, price: 100000000, priceSource: 'market', confidence: 0.9,
    reasons: [{ code: 'signal', message: 'buy signal for BTC/KRW (api, momentum, 1h)' }],
    explanation: 'Momentum is up.', risk: { kind: 'allow', notional: 500000, reasons: [] },
    approval: { approvers: 1, allowPartial: true, reasons: [{ code: 'above_auto_max', message: 'above the automatic limit' }] }, requiredApprovals: 1,
    sizeFactor: 1, createdAt: at('10:00:00'), deadline: at('10:05:00'),
    approvals: [{ by: 'api', at: at('10:00:10'), sizeFactor: 1, label: 'alice' }],
    history: [
      { state: 'pending', at: at('10:00:00') }, { state: 'awaiting-approval', at: at('10:00:01') },
      { state: 'approved', at: at('10:00:10'), by: 'api' }, { state: 'executing', at: at('10:00:11') }, { state: 'settled', at: at('10:00:12'), by: 'paper' },
    ],
    outcome: { state: 'settled', at: at('10:00:12'), by: 'paper', code: 'filled', reason: 'filled 0.004995 at 100050000' },
    clientOrderId: 'ct-p-20261126-00000000000a',
    order: { clientOrderId: 'ct-p-20261126-00000000000a', venueOrderId: 'paper-1', venue: 'paper', symbol: 'BTC/KRW', side: 'buy', status: 'filled', filledQuantity: '0.004995', avgPrice: '100050000', fee: '249.875', submittedAt: at('10:00:11'), updatedAt: at('10:00:12') },
    fill: { quantity: '0.004995', price: '100050000', fee: '249.875', notional: '499749.75', at: at('10:00:12') },
    ...overrides,
  };
}

const rejected = () => view({
  id: 'p-20261126-00000000000b', state: 'rejected', approvals: [], order: undefined, fill: undefined, clientOrderId: 'ct-p-20261126-00000000000b',
  history: [{ state: 'pending', at: at('11:00:00') }, { state: 'awaiting-approval', at: at('11:00:01') }, { state: 'rejected', at: at('11:00:20'), by: 'api', reason: 'not now' }],
  outcome: { state: 'rejected', at: at('11:00:20'), by: 'api', code: 'refused', reason: 'not now' },
});
const timedOut = () => view({
  id: 'p-20261126-00000000000c', state: 'timed-out', approvals: [], order: undefined, fill: undefined, clientOrderId: 'ct-p-20261126-00000000000c',
  history: [{ state: 'pending', at: at('12:00:00') }, { state: 'awaiting-approval', at: at('12:00:01') }, { state: 'timed-out', at: at('12:05:00'), by: 'system' }],
  outcome: { state: 'timed-out', at: at('12:05:00'), by: 'system', code: 'deadline', reason: 'no decision before the deadline' },
});
const failed = () => view({
  id: 'p-20261126-00000000000d', state: 'failed', notional: 4000, requestedNotional: 4000, approvals: [], clientOrderId: 'ct-p-20261126-00000000000d',
  approval: { approvers: 0, allowPartial: true, reasons: [] }, requiredApprovals: 0, fill: undefined,
  order: { clientOrderId: 'ct-p-20261126-00000000000d', venueOrderId: 'paper-2', venue: 'paper', symbol: 'BTC/KRW', side: 'buy', status: 'rejected', filledQuantity: '0', avgPrice: '0', fee: '0', submittedAt: at('13:00:01'), updatedAt: at('13:00:01'), rejectReason: 'below_minimum: 4000 is below 5000' },
  history: [{ state: 'pending', at: at('13:00:00') }, { state: 'approved', at: at('13:00:00'), by: 'policy' }, { state: 'executing', at: at('13:00:01') }, { state: 'failed', at: at('13:00:01'), by: 'paper' }],
  outcome: { state: 'failed', at: at('13:00:01'), by: 'paper', code: 'below_minimum', reason: 'below_minimum: 4000 is below 5000' },
});

const quiet: VaultLog = { warn: () => undefined, error: () => undefined };

// --- Rendering ----------------------------------------------------------------------------------------

describe('vault notes', () => {
  it('writes a settled proposal with its ids, exact amounts, approver, fill, history and a link to its day', () => {
    const note = renderProposalNote(view(), { quoteCurrency: 'KRW' }, DAY);
    const { data, body } = parseFrontMatter(note);
    expect(data).to.include({
      type: 'proposal', id: 'p-20261126-00000000000a', signalId: 'sig-20261126-00000000000a', clientOrderId: 'ct-p-20261126-00000000000a',
      symbol: 'BTC/KRW', side: 'buy', intent: 'buy', state: 'settled', quoteCurrency: 'KRW', notional: '500000', price: '100000000',
      confidence: 0.9, finishedAt: at('10:00:12'), venue: 'paper', daily: `[[${DAY}]]`, pnl: null,
    });
    expect(data['quantity']).to.equal(null);
    expect(data['outcome']).to.deep.equal({ code: 'filled', by: 'paper', reason: 'filled 0.004995 at 100050000' });
    expect(data['approvers']).to.deep.equal([{ principal: 'api', label: 'alice', at: at('10:00:10'), sizeFactor: 1 }]);
    expect(data['fill']).to.deep.equal({ quantity: '0.004995', price: '100050000', fee: '249.875', notional: '499749.75', at: at('10:00:12') });
    expect((data['history'] as Array<{ state: string }>).map((h) => h.state)).to.deep.equal(['pending', 'awaiting-approval', 'approved', 'executing', 'settled']);
    expect(data['risk']).to.deep.equal({ verdict: 'allow', code: null, notional: '500000' });
    expect(body).to.contain('## Explanation').and.contain('> Momentum is up.');
    expect(body).to.contain('approved by api (alice)');
    expect(body).to.contain('| fee | 249.875 KRW |');
    expect(body).to.contain('The position is open');
    expect(links(note)).to.deep.equal([DAY, DAY]);
  });

  it('writes a rejected, a timed-out and a failed proposal with who or what decided and why', () => {
    const r = parseFrontMatter(renderProposalNote(rejected(), {}, DAY));
    expect(r.data).to.include({ state: 'rejected', venue: null, fill: null, pnl: null, quoteCurrency: null });
    expect(r.data['outcome']).to.deep.equal({ code: 'refused', by: 'api', reason: 'not now' });
    expect(r.data['approvers']).to.deep.equal([]);
    expect(r.body).to.contain('**rejected** at').and.contain('not now').and.not.contain('## Fill');

    const t = parseFrontMatter(renderProposalNote(timedOut(), {}, DAY));
    expect(t.data).to.include({ state: 'timed-out', finishedAt: at('12:05:00') });
    expect(t.data['outcome']).to.deep.equal({ code: 'deadline', by: 'system', reason: 'no decision before the deadline' });
    expect(t.data['tags']).to.deep.equal(['chatops/proposal', 'chatops/timed-out']);

    const f = parseFrontMatter(renderProposalNote(failed(), {}, DAY));
    expect(f.data).to.include({ state: 'failed', venue: 'paper', fill: null, notional: '4000', requiredApprovals: 0 });
    expect(f.data['order']).to.deep.equal({ venueOrderId: 'paper-2', status: 'rejected' });
    expect(f.body).to.contain('| refused | below\\_minimum: 4000 is below 5000 |').and.contain('Approved by the policy');
  });

  it('keeps signal text, labels and reasons inside their values: no YAML break-out, no link, tag, embed or HTML', () => {
    const evil = 'x"\n---\nstate: settled\n- [[evil]] ![[embed.png]] <img src=x onerror=alert(1)> #tag %%c%% ==h== $m$ [a](http://e) | \\ `c`';
    const v = view({
      reasons: [{ code: 'signal', message: `buy signal for BTC/KRW (api, ${evil}, 1h)` }],
      explanation: `# Heading\n${evil}\n> quote`,
      approvals: [{ by: 'api', at: at('10:00:10'), sizeFactor: 0.5, label: `[[alice]] ${evil}` }],
      outcome: { state: 'settled', at: at('10:00:12'), by: 'paper', code: 'filled', reason: evil },
    });
    const note = renderProposalNote(v, {}, DAY);
    const { data, body } = parseFrontMatter(note);
    // The front matter holds the text (made link-free), not what the text tried to say.
    expect(data['state']).to.equal('settled');
    const label = (data['approvers'] as Array<{ label: string }>)[0]!.label;
    expect(label).to.contain('evil').and.contain('<img').and.not.contain('[[');
    expect((data['outcome'] as { reason: string }).reason).not.to.match(/\]\]|\]\(/);
    expect(links(note)).to.deep.equal([DAY, DAY]);
    expect(body).not.to.match(/(?<!\\)<img/);
    expect(body).not.to.match(/^#+ Heading/m);
    expect(body).not.to.match(/(?<![\\])#tag/);
    expect(body).to.contain('\\[\\[evil\\]\\]').and.contain('\\<img src\\=x onerror\\=alert(1)\\>');
    // Free text never starts a line of its own: no line of the body begins with it.
    expect(body.split('\n').filter((l) => l.startsWith('---') || l.startsWith('state:'))).to.deep.equal([]);
    // And a daily note listing the proposal stays link-clean too.
    const daily = renderDailyNote(DAY, [dayEntry(v, {})]);
    parseFrontMatter(daily);
    expect(links(daily)).to.deep.equal([v.id]);
  });

  it('sums a day: counts by final state, fills, notional traded, fees, realised PnL and approvals by whom', () => {
    const sell = view({ id: 'p-20261126-00000000000e', side: 'sell', intent: 'sell', approvals: [{ by: 'bob', at: at('14:00:05'), sizeFactor: 1 }], fill: { quantity: '0.004995', price: '100000000', fee: '249.75', notional: '499500', at: at('14:00:06') }, outcome: { state: 'settled', at: at('14:00:06'), by: 'paper', code: 'filled', reason: 'filled' } });
    const entries = [dayEntry(view(), {}), dayEntry(rejected(), {}), dayEntry(timedOut(), {}), dayEntry(failed(), {}), dayEntry(sell, { realized: '-999.625' })];
    const note = renderDailyNote(DAY, entries, 'KRW');
    const { data, body } = parseFrontMatter(note);
    expect(data).to.include({ type: 'daily', day: DAY, proposals: 5, fills: 2, notionalTraded: '999249.75', fees: '499.625', realizedPnl: '-999.625', quoteCurrency: 'KRW' });
    expect(data['states']).to.deep.equal({ settled: 2, rejected: 1, 'timed-out': 1, failed: 1 });
    expect(data['approvals']).to.deep.equal([{ principal: 'api', label: 'alice', count: 1 }, { principal: 'bob', label: null, count: 1 }]);
    expect(links(note)).to.deep.equal(entries.map((e) => e.id));
    expect(body).to.contain('2 settled, 1 rejected, 1 timed-out, 1 failed');
  });
});

// --- The fold: PnL once closed ---------------------------------------------------------------------------

/** Journal records of a filled order (as proposal-services writes them) and of its proposal's finish. */
function fillRecords(v: ProposalView, hms: string): JournalEntry[] {
  return [
    { type: 'order.filled', at: at(hms), proposalId: v.id, clientOrderId: v.clientOrderId, order: { ...v.order, fillSequence: Number(hms.replace(/:/g, '')) }, fill: v.fill },
    { type: 'proposal.finished', at: at(hms), proposalId: v.id, signalId: v.signalId, state: v.state, outcome: v.outcome },
  ];
}

const opened: JournalEntry = { type: 'account.opened', at: at('09:00:00'), venue: 'paper', openedAt: at('09:00:00'), cash: '10000000', quoteCurrency: 'KRW' };

function sellOf(id: string, quantity: string, price: string, fee: string, hms: string): ProposalView {
  const notional = (Number(quantity) * Number(price)).toString();
  return view({
    id, side: 'sell', intent: 'sell', quantity, clientOrderId: `ct-${id}`,
    order: { clientOrderId: `ct-${id}`, venueOrderId: `paper-${id}`, venue: 'paper', symbol: 'BTC/KRW', side: 'sell', status: 'filled', filledQuantity: quantity, avgPrice: price, fee, submittedAt: at(hms), updatedAt: at(hms) },
    fill: { quantity, price, fee, notional, at: at(hms) },
    outcome: { state: 'settled', at: at(hms), by: 'paper', code: 'filled', reason: 'filled' },
  });
}

describe('VaultFold', () => {
  function run(records: JournalEntry[], views: ProposalView[]) {
    const byId = new Map(views.map((v) => [v.id, v]));
    const fold = new VaultFold((id) => byId.get(id), quiet);
    const files = new Map<string, string>();
    let end = 0;
    for (const r of records) {
      fold.apply(r, r.at.slice(0, 10), (end += 100));
      for (const [k, v] of fold.takeFiles()) files.set(k, v);
    }
    return Object.assign(files, { state: JSON.parse(fold.serialize()) as { trips: object; extras: object; open: object } });
  }
  const note = (files: Map<string, string>, id: string) => parseFrontMatter(files.get(`proposals/${DAY}/${id}.md`)!);

  it('adds the realised PnL to a buy once a later sell closes its position, with the ledger\'s figure', () => {
    const buy = view();
    const half = sellOf('p-20261126-0000000000f1', '0.002', '101000000', '101', '15:00:00');
    const rest = sellOf('p-20261126-0000000000f2', '0.002995', '99000000', '148.2525', '16:00:00');
    const first = [opened, ...fillRecords(buy, '10:00:12'), ...fillRecords(half, '15:00:00')];
    let files = run(first, [buy, half]);
    // A partial sell realises its part; the buy's position is still open.
    expect(note(files, buy.id).data['pnl']).to.equal(null);
    const halfPnl = recountJournal(recordLines(first)).realizedPnl;
    expect((note(files, half.id).data['pnl'] as { realized: string }).realized).to.equal(halfPnl);

    const all = [...first, ...fillRecords(rest, '16:00:00')];
    files = run(all, [buy, half, rest]);
    const ledger = recountJournal(recordLines(all));
    expect(ledger.errors).to.deep.equal([]);
    expect(ledger.positions).to.deep.equal({});
    const buyPnl = note(files, buy.id).data['pnl'] as { realized: null; positionClosed: boolean; roundTrip: { realized: string; buys: string[]; sells: string[] } };
    expect(buyPnl.positionClosed).to.equal(true);
    expect(buyPnl.roundTrip.realized).to.equal(ledger.realizedPnl);
    expect(buyPnl.roundTrip.buys).to.deep.equal([`[[${buy.id}]]`]);
    expect(buyPnl.roundTrip.sells).to.deep.equal([`[[${half.id}]]`, `[[${rest.id}]]`]);
    // The two sells' own figures add up to the round trip's.
    const restPnl = note(files, rest.id).data['pnl'] as { realized: string };
    expect(new Dec(halfPnl).plus(restPnl.realized).eq(ledger.realizedPnl)).to.equal(true);
    const daily = parseFrontMatter(files.get(`daily/${DAY}.md`)!);
    expect(daily.data['realizedPnl']).to.equal(ledger.realizedPnl);
    expect(note(files, buy.id).body).to.contain('The position was closed at');
  });

  it('books a live order\'s partial fills and then the rest of its final fill, as the ledger does', () => {
    const buy = view({ order: { ...view().order!, venue: 'upbit' } });
    const sell = sellOf('p-20261126-0000000000f5', '0.004995', '101000000', '252.24', '15:00:00');
    sell.order = { ...sell.order!, venue: 'upbit' };
    const part = (filledQuantity: string, quantity: string, price: string, fee: string, seq: number): JournalEntry => ({
      type: 'order.partially_filled', at: at('10:00:11'), proposalId: buy.id, clientOrderId: buy.clientOrderId,
      order: { clientOrderId: buy.clientOrderId, venue: 'upbit', symbol: 'BTC/KRW', side: 'buy', status: 'partially_filled', filledQuantity, fillSequence: seq }, fill: { quantity, price, fee },
    });
    const upbitOpened: JournalEntry = { ...opened, venue: 'upbit' };
    const [filled, finished] = fillRecords(buy, '10:00:12');
    const records = [
      upbitOpened, part('0.002', '0.002', '100000000', '100', 1), part('0.002', '0.002', '100000000', '100', 1), part('0.004', '0.002', '100100000', '100.1', 2),
      { ...filled!, order: { ...(filled!['order'] as object), fillSequence: 3 } }, finished!,
      ...fillRecords(sell, '15:00:00').map((r) => (r.type === 'order.filled' ? { ...r, order: { ...(r['order'] as object), fillSequence: 4 } } : r)),
    ];
    const files = run(records, [buy, sell]);
    const ledger = recountJournal(recordLines(records), { venue: 'upbit' });
    expect(ledger.errors).to.deep.equal([]);
    expect(ledger.positions).to.deep.equal({});
    expect((note(files, buy.id).data['pnl'] as { roundTrip: { realized: string } }).roundTrip.realized).to.equal(ledger.realizedPnl);
  });

  it('counts a fill journalled again after a restart once', () => {
    const buy = view();
    const sell = sellOf('p-20261126-0000000000f3', '0.004995', '101000000', '252.24', '15:00:00');
    const again: JournalEntry = { ...fillRecords(buy, '10:00:12')[0]!, type: 'order.reconciled', at: at('15:30:00') };
    const records = [opened, ...fillRecords(buy, '10:00:12'), ...fillRecords(sell, '15:00:00'), again];
    const files = run(records, [buy, sell]);
    const pnl = note(files, buy.id).data['pnl'] as { roundTrip: { realized: string } };
    expect(pnl.roundTrip.realized).to.equal(recountJournal(recordLines(records)).realizedPnl);
    // The repeat opened no phantom position, and nothing is left waiting for a note.
    expect(files.state).to.deep.include({ trips: {}, extras: {}, open: {} });
  });
});

// --- The live vault and the rebuild, on real files ---------------------------------------------------------

describe('Vault (live) and rebuildVault', function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vault-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function tree(root: string): Map<string, string> {
    const out = new Map<string, string>();
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else out.set(path.relative(root, p), fs.readFileSync(p, 'utf8'));
      }
    };
    walk(root);
    return out;
  }

  /** A service's journal, archive and vault on `dir`. */
  function open() {
    const io = new NodeStorageIo();
    const journalDir = path.join(dir, 'journal');
    const journal = new TradeLog(io, journalDir);
    const archive = new ProposalArchive(io, journalDir);
    const vault = Vault.open({ dir: path.join(dir, 'vault'), journalDir, journal, views: (id) => archive.get(id), log: quiet, flushIntervalMs: 20 });
    /** What the orchestrator does when a proposal finishes: archive, then journal. */
    const finish = async (v: ProposalView, records: JournalEntry[]) => {
      await journal.append(records[0]!);
      await archive.add(v, records[1]!.at);
      await journal.append(records[1]!);
    };
    const close = async () => {
      await journal.close();
      await archive.close();
      await vault.close();
    };
    return { journal, archive, vault, finish, close, journalDir };
  }

  it('writes notes as records become durable, goes on after a restart, and a rebuild gives the same bytes', async () => {
    const buy = view();
    const sell = sellOf('p-20261126-0000000000f4', '0.004995', '99000000', '247.25', '15:00:00');
    const s1 = open();
    await s1.journal.append(opened);
    await s1.finish(buy, fillRecords(buy, '10:00:12'));
    await s1.archive.add(rejected(), at('11:00:20'));
    await s1.journal.append({ type: 'proposal.finished', at: at('11:00:20'), proposalId: rejected().id, state: 'rejected' });
    await s1.vault.flush();
    const live = path.join(dir, 'vault');
    expect(parseFrontMatter(fs.readFileSync(path.join(live, 'proposals', DAY, `${buy.id}.md`), 'utf8')).data['pnl']).to.equal(null);
    expect(links(fs.readFileSync(path.join(live, 'daily', `${DAY}.md`), 'utf8'))).to.deep.equal([buy.id, rejected().id]);
    await s1.close();

    // Records written while no vault ran (a crash before its bookmark) are caught up on the next start.
    const io = new NodeStorageIo();
    const offline = new TradeLog(io, path.join(dir, 'journal'));
    const offlineArchive = new ProposalArchive(io, path.join(dir, 'journal'));
    await offline.append(fillRecords(sell, '15:00:00')[0]!);
    await offlineArchive.add(sell, at('15:00:00'));
    await offline.append(fillRecords(sell, '15:00:00')[1]!);
    await offline.close();
    await offlineArchive.close();

    const s2 = open();
    await s2.finish(timedOut(), [{ type: 'proposal.transition', at: at('12:05:00'), proposalId: timedOut().id }, { type: 'proposal.finished', at: at('16:00:00'), proposalId: timedOut().id, state: 'timed-out' }]);
    await s2.vault.flush();
    const buyNote = parseFrontMatter(fs.readFileSync(path.join(live, 'proposals', DAY, `${buy.id}.md`), 'utf8'));
    expect((buyNote.data['pnl'] as { positionClosed: boolean }).positionClosed).to.equal(true);
    expect(links(fs.readFileSync(path.join(live, 'daily', `${DAY}.md`), 'utf8'))).to.deep.equal([buy.id, rejected().id, sell.id, timedOut().id]);
    await s2.close();

    const rebuilt = path.join(dir, 'rebuilt');
    const report = rebuildVault({ journalDir: path.join(dir, 'journal'), outDir: rebuilt, log: quiet });
    expect(report).to.include({ notes: 4, days: 1 });
    const a = tree(live);
    const b = tree(rebuilt);
    expect([...a.keys()].sort()).to.deep.equal([...b.keys()].sort());
    for (const [file, text] of a) expect(b.get(file), file).to.equal(text);
    expect(a.has(VAULT_STATE_FILE)).to.equal(true);
  });

  it('stops a long catch-up at once on close, and the next start goes on from where it stopped', async () => {
    // A journal of a few megabytes that no vault has read (a first start with this version).
    const journalDir = path.join(dir, 'journal');
    fs.mkdirSync(journalDir, { recursive: true });
    const filler = Array.from({ length: 12_000 }, (_, i) => JSON.stringify({ type: 'signal.dropped', at: at('09:30:00'), signalId: `sig-${i}`, code: 'no_position', reason: 'x'.repeat(300) }));
    const last = rejected();
    const records = [...filler, JSON.stringify({ type: 'proposal.finished', at: at('11:00:20'), proposalId: last.id, state: 'rejected' })];
    const file = path.join(journalDir, `${DAY}.jsonl`);
    fs.writeFileSync(file, `${records.join('\n')}\n`);
    const silent = { onDurable: () => () => undefined };
    const options = { dir: path.join(dir, 'vault'), journalDir, journal: silent, views: (id: string) => (id === last.id ? last : undefined), log: quiet };

    const first = Vault.open(options);
    await first.close();
    const bookmark = JSON.parse(fs.readFileSync(path.join(dir, 'vault', VAULT_STATE_FILE), 'utf8')) as { cursor: Record<string, number> };
    expect(bookmark.cursor[DAY] ?? 0).to.be.below(fs.statSync(file).size);
    expect(fs.existsSync(path.join(dir, 'vault', 'proposals', DAY, `${last.id}.md`))).to.equal(false);

    const second = Vault.open(options);
    await second.flush();
    await second.close();
    const after = JSON.parse(fs.readFileSync(path.join(dir, 'vault', VAULT_STATE_FILE), 'utf8')) as { cursor: Record<string, number> };
    expect(after.cursor[DAY]).to.equal(fs.statSync(file).size);
    expect(parseFrontMatter(fs.readFileSync(path.join(dir, 'vault', 'proposals', DAY, `${last.id}.md`), 'utf8')).data['state']).to.equal('rejected');
  });
});
