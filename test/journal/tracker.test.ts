import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ProposalArchive, SignalRegistry } from '../../src/journal/tracker';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { StorageError } from '../../src/errors';
import type { ProposalView } from '../../src/proposal/view';
import { FaultyIo } from '../fakes/faulty-io';
import { outcome } from '../support/outcome';

const NOW = Date.parse('2026-11-28T12:00:00Z');
const view = (id: string, state: ProposalView['state'], createdAt: string) => ({ id, state, createdAt }) as ProposalView;

describe('ProposalArchive', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'archive-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const indexFile = (day: string) => path.join(dir, 'proposals', 'index', `${day}.jsonl`);
  const dayFile = (day: string) => path.join(dir, 'proposals', `${day}.jsonl`);

  it('finds an archived proposal after a reopen through the index filed under its creation day', async () => {
    const archive = new ProposalArchive(new NodeStorageIo(), dir, () => NOW);
    await archive.add(view('p-20261126-00000000000a', 'settled', '2026-11-26T10:00:00Z'), '2026-11-27T01:00:00Z');
    await archive.add(view('p-20261127-00000000000b', 'rejected', '2026-11-27T10:00:00Z'), '2026-11-27T11:00:00Z');
    await archive.close();

    // The index entry says where the record is: the day it finished, its offset and length.
    const [entry] = fs.readFileSync(indexFile('2026-11-26'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; day: string; offset: number; length: number });
    expect(entry).to.include({ id: 'p-20261126-00000000000a', day: '2026-11-27' });
    const record = fs.readFileSync(dayFile('2026-11-27')).subarray(entry!.offset, entry!.offset + entry!.length).toString();
    expect(JSON.parse(record).proposal.id).to.equal('p-20261126-00000000000a');

    const fresh = new ProposalArchive(new NodeStorageIo(), dir, () => NOW);
    expect(fresh.get('p-20261126-00000000000a')?.state).to.equal('settled');
    expect(fresh.get('p-20261127-00000000000b')?.state).to.equal('rejected');
    expect(fresh.get('p-20261127-00000000000c')).to.equal(undefined);
    // Only the index leads to a record: without its entry the proposal is not found.
    fs.writeFileSync(indexFile('2026-11-27'), '');
    const withoutEntry = new ProposalArchive(new NodeStorageIo(), dir, () => NOW);
    expect(withoutEntry.get('p-20261127-00000000000b')).to.equal(undefined);
    await Promise.all([fresh.close(), withoutEntry.close()]);
  });

  it('builds an index once for an archive folder written without one', async () => {
    const lines = [
      { at: '2026-11-27T01:00:00Z', proposal: view('p-20261126-00000000000a', 'settled', '2026-11-26T10:00:00Z') },
      { at: '2026-11-27T02:00:00Z', proposal: view('p-20261127-00000000000b', 'timed-out', '2026-11-27T01:00:00Z') },
    ];
    fs.mkdirSync(path.join(dir, 'proposals'), { recursive: true });
    fs.writeFileSync(dayFile('2026-11-27'), `${lines.map((l) => JSON.stringify(l)).join('\n')}\n{"at":"2026-11-27T03:00:00Z","propos`);
    fs.writeFileSync(dayFile('2026-11-28'), `${JSON.stringify({ at: '2026-11-28T01:00:00Z', proposal: view('p-20261126-00000000000c', 'failed', '2026-11-26T11:00:00Z') })}\n`);

    const archive = new ProposalArchive(new NodeStorageIo(), dir, () => NOW);
    expect(fs.existsSync(path.join(dir, 'proposals', 'index', '.complete'))).to.equal(true);
    expect(fs.readFileSync(indexFile('2026-11-26'), 'utf8').trim().split('\n')).to.have.length(2);
    expect(archive.get('p-20261126-00000000000a')?.state).to.equal('settled');
    expect(archive.get('p-20261127-00000000000b')?.state).to.equal('timed-out');
    expect(archive.get('p-20261126-00000000000c')?.state).to.equal('failed');
    await archive.close();

    // Proposals archived afterwards are indexed as they are added, on top of the built index.
    const next = new ProposalArchive(new NodeStorageIo(), dir, () => NOW);
    await next.add(view('p-20261126-00000000000d', 'settled', '2026-11-26T12:00:00Z'), '2026-11-28T05:00:00Z');
    await next.close();
    const fresh = new ProposalArchive(new NodeStorageIo(), dir, () => NOW);
    expect(fresh.get('p-20261126-00000000000a')?.state).to.equal('settled');
    expect(fresh.get('p-20261126-00000000000d')?.state).to.equal('settled');
    await fresh.close();
  });

  it('rejects add with a StorageError and does not know the proposal when its record cannot be written', async () => {
    const io = new FaultyIo();
    const archive = new ProposalArchive(io, dir, () => NOW);
    io.failNext('ENOSPC', { match: (p) => p.kind === 'write' && p.file === dayFile('2026-11-28') });
    const o = await outcome(archive.add(view('p-20261128-00000000000a', 'settled', '2026-11-28T10:00:00Z'), '2026-11-28T11:00:00Z'));
    expect((o as { error: unknown }).error).to.be.instanceOf(StorageError).and.include({ errno: 'ENOSPC' });
    expect(archive.get('p-20261128-00000000000a')).to.equal(undefined);
    await archive.add(view('p-20261128-00000000000b', 'rejected', '2026-11-28T10:30:00Z'), '2026-11-28T11:30:00Z');
    await archive.close();
    const fresh = new ProposalArchive(new NodeStorageIo(), dir, () => NOW);
    expect(fresh.get('p-20261128-00000000000a')).to.equal(undefined);
    expect(fresh.get('p-20261128-00000000000b')?.state).to.equal('rejected');
    await fresh.close();
  });

  it('finds a proposal by id and lists it once when its index entry could not be written and archiving is retried', async () => {
    const io = new FaultyIo();
    const archive = new ProposalArchive(io, dir, () => NOW);
    const p = view('p-20261128-00000000000a', 'settled', '2026-11-28T10:00:00Z');
    io.failNext('EIO', { match: (pt) => pt.kind === 'write' && pt.file === indexFile('2026-11-28') });
    expect((await outcome(archive.add(p, '2026-11-28T11:00:00Z'))).ok).to.equal(false);
    // As the orchestrator retries a failed archive once storage is back.
    expect(await archive.ensure(p, '2026-11-28T11:00:05Z', ['2026-11-28']), 'the record was there; only its index entry is written').to.equal(false);
    await archive.close();
    const fresh = new ProposalArchive(new NodeStorageIo(), dir, () => NOW);
    expect(fresh.list({ limit: 10 }).map((v) => v.id)).to.deep.equal([p.id]);
    expect(fresh.get(p.id)?.state, 'found by id after a restart').to.equal('settled');
    await fresh.close();
  });
});

describe('SignalRegistry', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signals-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('does not know a signal whose record could not be written', async () => {
    const io = new FaultyIo();
    const reg = new SignalRegistry(io, dir, () => NOW);
    io.failNext('EROFS', { match: (p) => p.kind === 'datasync' });
    const id = 'sig-20261128-00000000000a';
    const o = await outcome(reg.add({ id, receivedAt: '2026-11-28T11:00:00.000Z', status: 'received' }));
    expect((o as { error: unknown }).error).to.be.instanceOf(StorageError).and.include({ errno: 'EROFS' });
    expect(reg.get(id)).to.equal(undefined);
    await reg.close();
    expect(new SignalRegistry(new NodeStorageIo(), dir, () => NOW).get(id)).to.equal(undefined);
  });
});
