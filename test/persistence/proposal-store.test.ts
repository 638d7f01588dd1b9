import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { WalProposalStore, type PersistedProposal } from '../../src/persistence/proposal-store';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { InvariantError, StorageError } from '../../src/errors';
import { FaultyIo } from '../fakes/faulty-io';
import { outcome } from '../support/outcome';

const record = (id: string, updatedAt: number, state = 'awaiting-approval'): PersistedProposal => ({
  id, updatedAt, snapshot: { status: 'active', value: state, context: { id, createdAt: updatedAt } },
});

/** A lowdb shard document of the layout before the write-ahead log. */
function writeShard(dir: string, n: number, records: PersistedProposal[]): string {
  const file = path.join(dir, 'proposals', `shard-${String(n).padStart(2, '0')}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ version: 1, proposals: Object.fromEntries(records.map((r) => [r.id, r])) }));
  return file;
}

const byId = (records: Iterable<PersistedProposal>) => Object.fromEntries([...records].map((r) => [r.id, r]));

describe('WalProposalStore', () => {
  let dataDir: string;
  beforeEach(() => { dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'proposal-store-')); });
  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('keeps a put record and forgets a removed one across a reopen', async () => {
    const io = new NodeStorageIo();
    const { store } = await WalProposalStore.open(io, dataDir);
    await store.put(record('p-a', 1));
    await store.put(record('p-b', 2));
    await store.put(record('p-a', 3, 'executing'));
    await store.remove('p-b');
    expect(store.size).to.equal(1);
    expect(store.get('p-a')).to.deep.equal(record('p-a', 3, 'executing'));
    await store.close();
    const { store: again, report } = await WalProposalStore.open(io, dataDir);
    expect(byId(again.all())).to.deep.equal({ 'p-a': record('p-a', 3, 'executing') });
    expect(report.migrated).to.equal(undefined);
    await again.close();
  });

  it('shares one sync among the transitions written in one turn', async () => {
    const { store } = await WalProposalStore.open(new NodeStorageIo(), dataDir);
    await Promise.all(Array.from({ length: 64 }, (_, i) => store.put(record(`p-${i}`, i))));
    expect(store.size).to.equal(64);
    expect(store.stats.syncs).to.be.lessThan(store.stats.commits);
    await store.close();
  });

  it('rejects a put with a StorageError and keeps the last durable record when the write fails', async () => {
    const io = new FaultyIo();
    const { store } = await WalProposalStore.open(io, dataDir);
    await store.put(record('p-a', 1));
    io.failNext('ENOSPC');
    const o = await outcome(store.put(record('p-a', 2, 'executing')));
    expect((o as { error: unknown }).error).to.be.instanceOf(StorageError).and.include({ errno: 'ENOSPC' });
    expect(store.get('p-a')).to.deep.equal(record('p-a', 1));
    await store.close();
    const { store: again } = await WalProposalStore.open(new NodeStorageIo(), dataDir);
    expect(again.get('p-a')).to.deep.equal(record('p-a', 1));
    await again.close();
  });

  describe('migration from shard files', () => {
    it('imports the proposals of every legacy shard once and removes the shards', async () => {
      writeShard(dataDir, 0, [record('p-a', 1), record('p-b', 2)]);
      writeShard(dataDir, 7, [record('p-c', 3, 'executing')]);
      const { store, report } = await WalProposalStore.open(new NodeStorageIo(), dataDir);
      expect(report.migrated).to.equal(3);
      expect(byId(store.all())).to.deep.equal({ 'p-a': record('p-a', 1), 'p-b': record('p-b', 2), 'p-c': record('p-c', 3, 'executing') });
      expect(fs.readdirSync(path.join(dataDir, 'proposals')).filter((n) => n.startsWith('shard-'))).to.deep.equal([]);
      await store.remove('p-b');
      await store.close();

      const { store: again, report: second } = await WalProposalStore.open(new NodeStorageIo(), dataDir);
      expect(second.migrated).to.equal(undefined);
      expect(byId(again.all())).to.deep.equal({ 'p-a': record('p-a', 1), 'p-c': record('p-c', 3, 'executing') });
      await again.close();
    });

    it('skips an empty shard left by a power loss', async () => {
      writeShard(dataDir, 0, [record('p-a', 1)]);
      fs.writeFileSync(path.join(dataDir, 'proposals', 'shard-01.json'), '');
      const { store, report } = await WalProposalStore.open(new NodeStorageIo(), dataDir);
      expect(report.migrated).to.equal(1);
      expect(byId(store.all())).to.deep.equal({ 'p-a': record('p-a', 1) });
      expect(fs.existsSync(path.join(dataDir, 'proposals', 'shard-01.json'))).to.equal(false);
      await store.close();
    });

    it('refuses to start, naming the file, when a shard is not valid JSON, and keeps every shard', async () => {
      writeShard(dataDir, 0, [record('p-a', 1)]);
      const bad = writeShard(dataDir, 3, [record('p-b', 2)]);
      fs.writeFileSync(bad, fs.readFileSync(bad, 'utf8').slice(0, 25));
      const o = await outcome(WalProposalStore.open(new NodeStorageIo(), dataDir));
      const error = (o as { error: unknown }).error;
      expect(error).to.be.instanceOf(InvariantError).and.include({ code: 'corrupt_store' });
      expect((error as Error).message).to.include(bad);
      expect((error as InvariantError).details).to.include({ file: bad });
      expect(fs.readdirSync(path.join(dataDir, 'proposals')).filter((n) => n.startsWith('shard-')).sort()).to.deep.equal(['shard-00.json', 'shard-03.json']);
      expect(fs.existsSync(path.join(dataDir, 'proposals', 'checkpoint.json'))).to.equal(false);
    });

    it('does not import shards again that a crash left after the import, so newer transitions win', async () => {
      const shard = writeShard(dataDir, 0, [record('p-a', 1)]);
      const legacy = fs.readFileSync(shard);
      const { store } = await WalProposalStore.open(new NodeStorageIo(), dataDir);
      await store.put(record('p-a', 2, 'executing'));
      await store.flush();
      // A crash between the import's checkpoint and the removal of the shards.
      fs.writeFileSync(shard, legacy);
      const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'proposal-store-copy-'));
      try {
        fs.cpSync(dataDir, folder, { recursive: true });
        const { store: again, report } = await WalProposalStore.open(new NodeStorageIo(), folder);
        expect(report.migrated).to.equal(undefined);
        expect(again.get('p-a')).to.deep.equal(record('p-a', 2, 'executing'));
        expect(fs.existsSync(path.join(folder, 'proposals', 'shard-00.json'))).to.equal(false);
        await again.close();
      } finally {
        fs.rmSync(folder, { recursive: true, force: true });
      }
      await store.close();
    });

    it('keeps the shards when the import cannot be written, and imports them once storage is back', async () => {
      writeShard(dataDir, 0, [record('p-a', 1)]);
      const io = new FaultyIo();
      io.failNext('ENOSPC', { match: (p) => p.kind === 'replaceFile' });
      const o = await outcome(WalProposalStore.open(io, dataDir));
      expect((o as { error: unknown }).error).to.be.instanceOf(StorageError).and.include({ errno: 'ENOSPC' });
      expect(fs.existsSync(path.join(dataDir, 'proposals', 'shard-00.json'))).to.equal(true);

      const { store, report } = await WalProposalStore.open(io, dataDir);
      expect(report.migrated).to.equal(1);
      expect(store.get('p-a')).to.deep.equal(record('p-a', 1));
      await store.close();
    });
  });
});
