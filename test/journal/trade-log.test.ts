import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { DailyJsonl, TradeLog } from '../../src/journal/trade-log';
import { ProposalArchive, SignalRegistry } from '../../src/journal/tracker';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { StorageError } from '../../src/errors';
import { FaultyIo } from '../fakes/faulty-io';
import type { ProposalView } from '../../src/proposal/view';

const io = new NodeStorageIo();

describe('journal', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'journal-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('ends a torn last line before appending, so the next record is not lost with it', async () => {
    fs.writeFileSync(path.join(dir, '2026-11-26.jsonl'), '{"type":"signal.received","at":"2026-11-26T00:00:00Z"}\n{"type":"order.inte');
    const log = new TradeLog(io, dir);
    await log.append({ type: 'order.intent', at: '2026-11-26T00:00:01.000Z', proposalId: 'p-1' });
    await log.close();
    expect(log.read('2026-11-26').map((r) => r.type)).to.deep.equal(['signal.received', 'order.intent']);
  });

  it('writes each record into the file of its UTC day', async () => {
    const files = new DailyJsonl(io, dir);
    await Promise.all([files.write({ at: '2026-11-26T23:59:59.999Z', n: 1 }), files.write({ at: '2026-11-27T00:00:00.000Z', n: 2 })]);
    await files.close();
    expect(files.days()).to.deep.equal(['2026-11-26', '2026-11-27']);
    expect(files.read('2026-11-27')).to.deep.equal([{ at: '2026-11-27T00:00:00.000Z', n: 2 }]);
  });

  it('keeps every acknowledged record when records of more than three days interleave', async () => {
    const files = new DailyJsonl(io, dir);
    const days = ['2026-11-01', '2026-11-02', '2026-11-03', '2026-11-04', '2026-11-01', '2026-11-05', '2026-11-02'];
    const results = await Promise.allSettled(days.map((day, n) => files.write({ at: `${day}T00:00:0${n}.000Z`, n })));
    await files.close();
    expect(results.map((r) => r.status)).to.deep.equal(days.map(() => 'fulfilled'));
    expect(files.read('2026-11-01').map((r) => r['n'])).to.deep.equal([0, 4]);
    expect(files.read('2026-11-02').map((r) => r['n'])).to.deep.equal([1, 6]);
    expect(fs.readFileSync(files.fileFor('2026-11-01'), 'utf8').split('\n').filter((l) => l !== '')).to.have.length(2);
  });

  it('rejects an append with a StorageError and keeps no part of it when its write fails', async () => {
    const faulty = new FaultyIo();
    const log = new TradeLog(faulty, dir);
    await log.append({ type: 'signal.received', at: '2026-11-26T00:00:00.000Z' });
    faulty.failNext('ENOSPC', { match: (p) => p.kind === 'write', effect: 'partial' });
    let error: unknown;
    await log.append({ type: 'order.intent', at: '2026-11-26T00:00:01.000Z', proposalId: 'p-1' }).catch((err: unknown) => { error = err; });
    expect(error).to.be.instanceOf(StorageError).and.include({ errno: 'ENOSPC' });
    await log.append({ type: 'order.submitted', at: '2026-11-26T00:00:02.000Z', proposalId: 'p-1' });
    await log.close();
    expect(log.read('2026-11-26').map((r) => r.type)).to.deep.equal(['signal.received', 'order.submitted']);
    expect(fs.readFileSync(path.join(dir, '2026-11-26.jsonl'), 'utf8').split('\n')).to.have.length(3);
  });

  it('tells observers each record once it is durable, redacted, never one whose write failed', async () => {
    const faulty = new FaultyIo();
    const log = new TradeLog(faulty, dir, (v) => JSON.parse(JSON.stringify(v).replaceAll('s3cret-value', '[redacted]')) as typeof v);
    const seen: string[] = [];
    const off = log.onDurable((r) => seen.push(`${r.type}:${String(r['note'] ?? '')}`));
    log.onDurable(() => { throw new Error('a faulty observer'); });
    await log.append({ type: 'signal.received', at: '2026-11-26T00:00:00.000Z', note: 'key s3cret-value' });
    faulty.failNext('ENOSPC', { match: (p) => p.kind === 'write', effect: 'partial' });
    await log.append({ type: 'order.intent', at: '2026-11-26T00:00:01.000Z' }).catch(() => undefined);
    await log.append({ type: 'order.submitted', at: '2026-11-26T00:00:02.000Z' });
    off();
    await log.append({ type: 'order.filled', at: '2026-11-26T00:00:03.000Z' });
    await log.close();
    expect(seen).to.deep.equal(['signal.received:key [redacted]', 'order.submitted:']);
  });

  it('finds an archived proposal by id in the day files after its creation day, newest first in lists', async () => {
    const now = Date.parse('2026-11-28T12:00:00Z');
    const archive = new ProposalArchive(io, dir, () => now);
    const mk = (id: string, state: ProposalView['state'], createdAt: string) => ({ id, state, createdAt }) as ProposalView;
    await archive.add(mk('p-20261126-00000000000a', 'settled', '2026-11-26T10:00:00Z'), '2026-11-27T01:00:00Z');
    await archive.add(mk('p-20261127-00000000000b', 'rejected', '2026-11-27T10:00:00Z'), '2026-11-27T11:00:00Z');
    await archive.close();
    const fresh = new ProposalArchive(io, dir, () => now); // nothing cached
    expect(fresh.get('p-20261126-00000000000a')?.state).to.equal('settled');
    expect(fresh.get('p-20261126-00000000000c')).to.equal(undefined);
    expect(fresh.list({ limit: 10 }).map((p) => p.id)).to.deep.equal(['p-20261127-00000000000b', 'p-20261126-00000000000a']);
    expect(fresh.list({ state: 'settled', limit: 10 }).map((p) => p.id)).to.deep.equal(['p-20261126-00000000000a']);
    await fresh.close();
  });

  it('lists what this process archived without reading day files when that is enough', async () => {
    const now = Date.parse('2026-11-28T12:00:00Z');
    const archive = new ProposalArchive(io, dir, () => now);
    const mk = (id: string, state: ProposalView['state']) => ({ id, state, createdAt: '2026-11-28T10:00:00Z' }) as ProposalView;
    await archive.add(mk('p-20261128-00000000000a', 'settled'), '2026-11-28T11:00:00Z');
    await archive.add(mk('p-20261128-00000000000b', 'rejected'), '2026-11-28T11:00:01Z');
    fs.rmSync(path.join(dir, 'proposals'), { recursive: true, force: true });
    expect(archive.list({ limit: 2 }).map((p) => p.id)).to.deep.equal(['p-20261128-00000000000b', 'p-20261128-00000000000a']);
    expect(archive.list({ state: 'settled', limit: 1 }).map((p) => p.id)).to.deep.equal(['p-20261128-00000000000a']);
    await archive.close();
  });

  it('folds signal status lines and lists the signals whose processing was cut short', async () => {
    const now = Date.parse('2026-11-26T12:00:00Z');
    const reg = new SignalRegistry(io, dir, () => now);
    const signal = { id: 'sig-20261126-00000000000a', receivedAt: '2026-11-26T11:00:00.000Z', source: 'api' as const, symbol: 'BTC/KRW', action: 'buy' as const };
    await reg.add({ id: signal.id, receivedAt: signal.receivedAt, status: 'received', signal });
    await reg.add({ id: 'sig-20261126-00000000000b', receivedAt: signal.receivedAt, status: 'received', signal: { ...signal, id: 'sig-20261126-00000000000b' } });
    await reg.update('sig-20261126-00000000000b', { status: 'dropped', reason: 'paused' });
    await reg.close();
    const fresh = new SignalRegistry(io, dir, () => now);
    expect(fresh.get('sig-20261126-00000000000b')).to.include({ status: 'dropped', reason: 'paused' });
    expect(fresh.unprocessed().map((r) => r.id)).to.deep.equal(['sig-20261126-00000000000a']);
    await fresh.close();
  });
});
