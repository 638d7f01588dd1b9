import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { LogStore, type Change, type LogStoreOptions } from '../../src/persistence/log-store';
import { NodeStorageIo, type StorageIo } from '../../src/persistence/storage-io';
import { StorageHealth, type StorageHealthChange } from '../../src/persistence/storage-health';
import { InvariantError, StorageError } from '../../src/errors';
import { FAULT_CODES, FaultyIo, type FaultCode, type FaultEffect, type WritePointKind } from '../fakes/faulty-io';
import { outcome } from '../support/outcome';

type Value = { v: number };
type Model = Record<string, Value>;

const NAME = 'test';
const segmentName = (n: number) => `wal-${String(n).padStart(8, '0')}.log`;

function openStore(io: StorageIo, dir: string, opts: Partial<LogStoreOptions<Value>> = {}) {
  return LogStore.open<Value>(io, dir, { name: NAME, ...opts });
}

function memoryOf(store: LogStore<Value>): Model {
  return Object.fromEntries(store.entries());
}

/** A fresh temp folder (removed by `cleanup`). */
const made: string[] = [];
function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

function copyOf(dir: string): string {
  const copy = tempDir('log-store-copy-');
  fs.cpSync(dir, copy, { recursive: true });
  return copy;
}

/** What a fresh `LogStore.open` of `dir` restores, opened on a copy (a restore cuts and removes files). */
async function restoredFrom(dir: string): Promise<Model> {
  const copy = copyOf(dir);
  const { store } = await openStore(new NodeStorageIo(), copy);
  const map = memoryOf(store);
  await store.close();
  fs.rmSync(copy, { recursive: true, force: true });
  return map;
}

/** Yields to the event loop until `check` holds, for at most `ms` milliseconds. */
async function waitTurns(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

interface Op {
  name: string;
  run: (store: LogStore<Value>) => Promise<unknown>;
  /** What the op does to the map when it succeeds. */
  apply: (model: Model) => void;
}

/** Commits, a checkpoint and a group of commits sharing one sync: every kind of write point a store has. */
const WORKLOAD: Op[] = [
  { name: 'put a', run: (s) => s.put('a', { v: 1 }), apply: (m) => { m['a'] = { v: 1 }; } },
  {
    name: 'put b and remove seed',
    run: (s) => s.commit([{ key: 'b', value: { v: 2 } }, { key: 'seed', remove: true }] as Array<Change<Value>>),
    apply: (m) => { m['b'] = { v: 2 }; delete m['seed']; },
  },
  { name: 'checkpoint', run: (s) => s.checkpoint(), apply: () => undefined },
  { name: 'put a again', run: (s) => s.put('a', { v: 3 }), apply: (m) => { m['a'] = { v: 3 }; } },
  {
    name: 'two commits in one turn',
    run: (s) => Promise.all([s.put('c', { v: 4 }), s.remove('b')]),
    apply: (m) => { m['c'] = { v: 4 }; delete m['b']; },
  },
];

/** A store with one committed entry, in a fresh folder. */
async function seeded(io: FaultyIo): Promise<{ dir: string; store: LogStore<Value>; model: Model }> {
  const dir = tempDir('log-store-');
  const { store } = await openStore(io, dir);
  await store.put('seed', { v: 0 });
  return { dir, store, model: { seed: { v: 0 } } };
}

/** The kinds of the workload's write points, in order, from a run without faults. */
async function workloadPoints(): Promise<WritePointKind[]> {
  const io = new FaultyIo();
  const { store } = await seeded(io);
  const base = io.count;
  for (const op of WORKLOAD) await op.run(store);
  const kinds = io.points.slice(base).map((p) => p.kind);
  await store.close();
  return kinds;
}

function effectsFor(kind: WritePointKind): FaultEffect[] {
  return kind === 'write' ? ['none', 'partial', 'done'] : ['none', 'done'];
}

function expectStorageError(error: unknown, code: FaultCode, where: string): void {
  expect(error, where).to.be.instanceOf(StorageError);
  expect(error, where).to.include({ code: 'storage_unavailable', errno: code });
}

describe('LogStore', () => {
  let dir: string;
  beforeEach(() => { dir = tempDir('log-store-'); });
  afterEach(() => {
    for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('restores every committed change, removals included, when reopened', async () => {
    const io = new NodeStorageIo();
    const { store } = await openStore(io, dir);
    await store.put('a', { v: 1 });
    await store.commit([{ key: 'b', value: { v: 2 } }, { key: 'c', value: { v: 3 } }]);
    await store.remove('a');
    await store.put('c', { v: 4 });
    expect(memoryOf(store)).to.deep.equal({ b: { v: 2 }, c: { v: 4 } });
    expect(await restoredFrom(dir)).to.deep.equal({ b: { v: 2 }, c: { v: 4 } });
    await store.close();
    const again = await openStore(io, dir);
    expect(memoryOf(again.store)).to.deep.equal({ b: { v: 2 }, c: { v: 4 } });
    expect(again.report).to.include({ checkpointEntries: 2, replayedRecords: 0, tornBytes: 0 });
    await again.store.close();
  });

  it('applies a commit in memory only once its sync returned', async () => {
    const io = new FaultyIo();
    const { store } = await openStore(io, dir);
    const sync = io.hold((p) => p.kind === 'datasync');
    const commit = store.put('a', { v: 1 });
    await sync.reached;
    expect(store.get('a')).to.equal(undefined);
    expect(store.has('a')).to.equal(false);
    sync.release();
    await commit;
    expect(store.get('a')).to.deep.equal({ v: 1 });
    await store.close();
  });

  it('shares one sync among the commits made in one turn and applies them in order', async () => {
    const io = new FaultyIo();
    const { store } = await openStore(io, dir);
    const commits = Array.from({ length: 100 }, (_, i) => store.put(i % 2 === 0 ? 'even' : `k${i}`, { v: i }));
    await Promise.all(commits);
    expect(store.stats.commits).to.equal(100);
    expect(store.stats.syncs).to.be.lessThan(store.stats.commits);
    expect(store.stats.syncs).to.equal(1);
    expect(store.get('even')).to.deep.equal({ v: 98 });
    expect(await restoredFrom(dir)).to.deep.equal(memoryOf(store));
    await store.close();
  });

  describe('with a failing write point', () => {
    let kinds: WritePointKind[];
    before(async () => { kinds = await workloadPoints(); });

    it('counts a write point for every write, sync, open, replace and remove of the workload', () => {
      expect(kinds).to.deep.equal([
        'write', 'datasync', // put a
        'write', 'datasync', // put b and remove seed
        'open', 'replaceFile', 'remove', // checkpoint: new segment, checkpoint file, old segment
        'write', 'datasync', // put a again
        'write', 'datasync', // two commits in one turn
      ]);
    });

    for (const code of FAULT_CODES) {
      it(`refuses the change, keeps memory equal to disk and takes later commits when any one write point fails with ${code}`, async () => {
        for (const [i, kind] of kinds.entries()) {
          for (const effect of effectsFor(kind)) {
            const where = `write point ${i + 1} (${kind}) failing with ${code}, effect ${effect}`;
            // Wired as in the service: health refuses every write after a failure until its probe
            // brings it back (here the probe succeeds at once: the fault fired only once).
            const health = new StorageHealth(dir, { probeIntervalMs: 1, probe: async () => undefined });
            const changes: StorageHealthChange[] = [];
            health.onChange((c) => changes.push(c));
            const io = new FaultyIo(health);
            const { dir: storeDir, store, model } = await seeded(io);
            io.failAt(io.count + i + 1, code, { effect });
            for (const op of WORKLOAD) {
              const before = io.count;
              const o = await outcome(op.run(store));
              const hit = io.points.slice(before).some((p) => p.failed !== null);
              if (hit) {
                expect(o.ok, `${where}: ${op.name} should be refused`).to.equal(false);
                expectStorageError((o as { error: unknown }).error, code, where);
                expect(changes[0], where).to.include({ kind: 'unavailable', cause: code, file: io.failures[0]!.file });
                await waitTurns(() => health.ok, `${where}: storage health back by its probe`);
              } else {
                expect(o.ok, `${where}: ${op.name} should succeed`).to.equal(true);
                op.apply(model);
              }
              expect(memoryOf(store), `${where}: memory after ${op.name}`).to.deep.equal(model);
              expect(await restoredFrom(storeDir), `${where}: disk after ${op.name}`).to.deep.equal(model);
            }
            expect(io.failures, where).to.have.length(1);
            // Storage is back: a later commit succeeds and survives a reopen.
            await store.put('after', { v: 9 });
            model['after'] = { v: 9 };
            expect(memoryOf(store), where).to.deep.equal(model);
            await store.close();
            health.close();
            const again = await openStore(new NodeStorageIo(), storeDir);
            expect(memoryOf(again.store), `${where}: after reopen`).to.deep.equal(model);
            await again.store.close();
          }
        }
      });
    }

    it('refuses commits at once, writing nothing, while storage health reports a failure, and takes them once its probe succeeds', async () => {
      let diskBack = false;
      const health = new StorageHealth(tempDir('probe-'), {
        probeIntervalMs: 1,
        probe: async () => { if (!diskBack) throw new Error('storage still down'); },
      });
      const io = new FaultyIo(health);
      const { dir: storeDir, store, model } = await seeded(io);
      io.failNext('ENOSPC');
      expect((await outcome(store.put('a', { v: 1 }))).ok).to.equal(false);
      const sizeAfterFailure = fs.statSync(path.join(storeDir, segmentName(1))).size;
      // No fault is armed any more, but health still reports the failure: refused without a write.
      const o = await outcome(store.put('b', { v: 2 }));
      expect(o.ok).to.equal(false);
      expectStorageError((o as { error: unknown }).error, 'ENOSPC', 'while failing');
      expect(io.failures).to.have.length(1);
      expect(fs.statSync(path.join(storeDir, segmentName(1))).size).to.equal(sizeAfterFailure);
      expect(memoryOf(store)).to.deep.equal(model);
      diskBack = true;
      await waitTurns(() => health.ok, 'storage health back by its probe');
      await store.put('c', { v: 3 });
      expect(memoryOf(store)).to.deep.equal({ ...model, c: { v: 3 } });
      expect(await restoredFrom(storeDir)).to.deep.equal(memoryOf(store));
      await store.close();
      health.close();
    });

    for (const code of FAULT_CODES) {
      it(`refuses every change from the failing write point on until storage is back, then takes commits, when write points keep failing with ${code}`, async () => {
        for (const [i, kind] of kinds.entries()) {
          for (const effect of kind === 'write' ? (['none', 'partial'] as const) : (['none'] as const)) {
            const where = `write points from ${i + 1} (${kind}) failing with ${code}, effect ${effect}`;
            const io = new FaultyIo();
            const { dir: storeDir, store, model } = await seeded(io);
            io.failFrom(io.count + i + 1, code, { effect });
            let failing = false;
            for (const op of WORKLOAD) {
              const before = io.count;
              const o = await outcome(op.run(store));
              failing ||= io.points.slice(before).some((p) => p.failed !== null);
              if (failing) {
                expect(o.ok, `${where}: ${op.name} should be refused`).to.equal(false);
                expectStorageError((o as { error: unknown }).error, code, where);
              } else {
                expect(o.ok, `${where}: ${op.name} should succeed`).to.equal(true);
                op.apply(model);
              }
              expect(memoryOf(store), `${where}: memory after ${op.name}`).to.deep.equal(model);
            }
            io.clear();
            // The first write after the fault cuts whatever refused bytes the failed cuts left.
            await store.put('after', { v: 9 });
            model['after'] = { v: 9 };
            expect(memoryOf(store), where).to.deep.equal(model);
            expect(await restoredFrom(storeDir), `${where}: disk once storage is back`).to.deep.equal(model);
            await store.close();
            const again = await openStore(new NodeStorageIo(), storeDir);
            expect(memoryOf(again.store), `${where}: after reopen`).to.deep.equal(model);
            await again.store.close();
          }
        }
      });
    }

    for (const code of FAULT_CODES) {
      it(`refuses to open with a StorageError and opens once storage is back when a write point of restore fails with ${code}`, async () => {
        // A folder whose restore writes: a leftover temp file, an old segment and a torn tail to cut.
        const { store } = await openStore(new NodeStorageIo(), dir);
        await store.put('a', { v: 1 });
        await store.checkpoint();
        await store.put('b', { v: 2 });
        await store.flush();
        const model = memoryOf(store);
        const folder = copyOf(dir);
        await store.close();
        fs.writeFileSync(path.join(folder, 'checkpoint.json.tmp'), '{"version":1,"sto');
        fs.writeFileSync(path.join(folder, segmentName(1)), '');
        fs.appendFileSync(path.join(folder, segmentName(2)), 'deadbeef {"c":[');
        const probe = new FaultyIo();
        await (await openStore(probe, copyOf(folder))).store.close();
        const restorePoints = probe.points.findIndex((p) => p.kind === 'datasync') + 1;
        expect(probe.points.slice(0, restorePoints).map((p) => p.kind)).to.deep.equal(['mkdir', 'remove', 'remove', 'open', 'truncate', 'datasync']);
        for (let n = 1; n <= restorePoints; n++) {
          const target = copyOf(folder);
          const io = new FaultyIo();
          io.failAt(n, code);
          const o = await outcome(openStore(io, target));
          expect(o.ok, `write point ${n}`).to.equal(false);
          expectStorageError((o as { error: unknown }).error, code, `write point ${n}`);
          const again = await openStore(new NodeStorageIo(), target);
          expect(memoryOf(again.store), `write point ${n}`).to.deep.equal(model);
          await again.store.close();
        }
      });
    }
  });

  describe('restore', () => {
    /** A store with records in its last segment (no checkpoint yet), left open as a crash would. */
    async function crashedStore(): Promise<{ model: Model; segment: string; close: () => Promise<void> }> {
      const { store } = await openStore(new NodeStorageIo(), dir);
      for (let i = 0; i < 4; i++) await store.put(`k${i}`, { v: i });
      await store.remove('k0');
      return { model: memoryOf(store), segment: path.join(dir, segmentName(1)), close: () => store.close() };
    }

    it('cuts a torn last record of garbage and keeps every intact record when reopened', async () => {
      const crashed = await crashedStore();
      const folder = copyOf(dir);
      await crashed.close();
      const segment = path.join(folder, segmentName(1));
      const intact = fs.statSync(segment).size;
      fs.appendFileSync(segment, 'deadbeef {"c":[{"k":"x"');
      const { store, report } = await openStore(new NodeStorageIo(), folder);
      expect(report.tornBytes).to.equal(23);
      expect(report.tornFile).to.equal(segment);
      expect(report.replayedRecords).to.equal(5);
      expect(memoryOf(store)).to.deep.equal(crashed.model);
      expect(fs.statSync(segment).size).to.equal(intact);
      await store.put('k9', { v: 9 });
      expect(await restoredFrom(folder)).to.deep.equal({ ...crashed.model, k9: { v: 9 } });
      await store.close();
    });

    it('cuts the first half of a real record left at the end by a crash mid-write', async () => {
      const crashed = await crashedStore();
      const folder = copyOf(dir);
      await crashed.close();
      const segment = path.join(folder, segmentName(1));
      const text = fs.readFileSync(segment);
      const lastLine = text.subarray(text.lastIndexOf(0x0a, text.length - 2) + 1);
      fs.appendFileSync(segment, lastLine.subarray(0, Math.floor(lastLine.length / 2)));
      const { store, report } = await openStore(new NodeStorageIo(), folder);
      expect(report.tornBytes).to.equal(Math.floor(lastLine.length / 2));
      expect(memoryOf(store)).to.deep.equal(crashed.model);
      await store.close();
    });

    it('cuts a complete last line whose checksum does not match (a torn write that reached the newline)', async () => {
      const crashed = await crashedStore();
      const folder = copyOf(dir);
      await crashed.close();
      const segment = path.join(folder, segmentName(1));
      fs.appendFileSync(segment, '00000000 {"c":[{"k":"x","v":{"v":1}}]}\n');
      const { store, report } = await openStore(new NodeStorageIo(), folder);
      expect(report.tornBytes).to.be.greaterThan(0);
      expect(store.has('x')).to.equal(false);
      expect(memoryOf(store)).to.deep.equal(crashed.model);
      await store.close();
    });

    it('refuses to start, naming the file, when damage is followed by intact records', async () => {
      const crashed = await crashedStore();
      const folder = copyOf(dir);
      await crashed.close();
      const segment = path.join(folder, segmentName(1));
      const lines = fs.readFileSync(segment, 'utf8').split('\n');
      lines[1] = lines[1]!.replace('"k1"', '"kX"');
      fs.writeFileSync(segment, lines.join('\n'));
      const o = await outcome(openStore(new NodeStorageIo(), folder));
      expect(o.ok).to.equal(false);
      const error = (o as { error: unknown }).error;
      expect(error).to.be.instanceOf(InvariantError);
      expect(error).to.include({ code: 'corrupt_store' });
      expect((error as Error).message).to.include(segment);
      expect((error as InvariantError).details).to.include({ file: segment });
      // Nothing was cut: the evidence stays for whoever restores from a backup.
      expect(fs.readFileSync(segment, 'utf8')).to.equal(lines.join('\n'));
    });

    it('refuses to start, naming the file, when the checkpoint is not valid JSON', async () => {
      const { store } = await openStore(new NodeStorageIo(), dir);
      await store.put('a', { v: 1 });
      await store.close();
      const file = path.join(dir, 'checkpoint.json');
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').slice(0, 20));
      const o = await outcome(openStore(new NodeStorageIo(), dir));
      expect((o as { error: unknown }).error).to.be.instanceOf(InvariantError).and.include({ code: 'corrupt_store' });
      expect(((o as { error: unknown }).error as Error).message).to.include(file);
    });

    it('refuses a checkpoint written by another store', async () => {
      const { store } = await openStore(new NodeStorageIo(), dir);
      await store.put('a', { v: 1 });
      await store.close();
      const o = await outcome(LogStore.open<Value>(new NodeStorageIo(), dir, { name: 'another' }));
      expect((o as { error: unknown }).error).to.be.instanceOf(InvariantError).and.include({ code: 'corrupt_store' });
      expect(((o as { error: unknown }).error as Error).message).to.include('another');
    });

    it('imports what migrate returns into a checkpoint when the folder is new, and never again', async () => {
      let calls = 0;
      const migrate = async () => {
        calls += 1;
        return [['a', { v: 1 }], ['b', { v: 2 }]] as Array<[string, Value]>;
      };
      const first = await openStore(new NodeStorageIo(), dir, { migrate });
      expect(first.report.migrated).to.equal(2);
      expect(memoryOf(first.store)).to.deep.equal({ a: { v: 1 }, b: { v: 2 } });
      expect(fs.existsSync(path.join(dir, 'checkpoint.json'))).to.equal(true);
      await first.store.remove('a');
      await first.store.close();
      const second = await openStore(new NodeStorageIo(), dir, { migrate });
      expect(calls).to.equal(1);
      expect(second.report.migrated).to.equal(undefined);
      expect(memoryOf(second.store)).to.deep.equal({ b: { v: 2 } });
      await second.store.close();
    });
  });

  describe('checkpoint', () => {
    /** A store with a few commits, a removal and an overwrite in its log. */
    async function filled(io: StorageIo): Promise<LogStore<Value>> {
      const { store } = await openStore(io, dir);
      for (let i = 0; i < 5; i++) await store.put(`k${i}`, { v: i });
      await store.remove('k1');
      await store.put('k2', { v: 22 });
      return store;
    }

    it('removes the old segments and restores the same map from the checkpoint', async () => {
      const store = await filled(new NodeStorageIo());
      const model = memoryOf(store);
      await store.checkpoint();
      expect(fs.readdirSync(dir).sort()).to.deep.equal(['checkpoint.json', segmentName(2)]);
      expect(store.stats.checkpoints).to.equal(1);
      await store.put('k9', { v: 9 });
      const { store: again, report } = await openStore(new NodeStorageIo(), copyOf(dir));
      expect(memoryOf(again)).to.deep.equal({ ...model, k9: { v: 9 } });
      expect(report).to.include({ checkpointEntries: 4, replayedRecords: 1 });
      await again.close();
      await store.close();
    });

    it('checkpoints by itself once the log outgrows checkpointMinBytes', async () => {
      const { store } = await openStore(new NodeStorageIo(), dir, { checkpointMinBytes: 200 });
      for (let i = 0; i < 40; i++) await store.put(`k${i % 7}`, { v: i });
      await store.checkpoint(); // waits for one in flight, if any
      expect(store.stats.checkpoints).to.be.greaterThan(1);
      expect(fs.readdirSync(dir).filter((n) => n.startsWith('wal-'))).to.have.length(1);
      expect(await restoredFrom(dir)).to.deep.equal(memoryOf(store));
      await store.close();
    });

    it('restores the same map whichever step of a checkpoint a crash interrupts', async () => {
      const io = new FaultyIo();
      const store = await filled(io);
      const model = memoryOf(store);
      const crashes: Array<{ before: string; folder: string }> = [];
      io.onWritePoint = (p) => crashes.push({ before: `${p.kind} ${path.basename(p.file)}`, folder: copyOf(dir) });
      await store.checkpoint();
      io.onWritePoint = null;
      crashes.push({ before: 'nothing (checkpoint done)', folder: copyOf(dir) });
      expect(crashes.map((c) => c.before)).to.deep.equal([
        `open ${segmentName(2)}`, 'replaceFile checkpoint.json', `remove ${segmentName(1)}`, 'nothing (checkpoint done)',
      ]);
      for (const crash of crashes) {
        const { store: again } = await openStore(new NodeStorageIo(), crash.folder);
        expect(memoryOf(again), `crash before ${crash.before}`).to.deep.equal(model);
        await again.close();
      }
      await store.close();
    });

    it('restores the same map when a crash left a half-written checkpoint.json.tmp, and removes it', async () => {
      const store = await filled(new NodeStorageIo());
      const model = memoryOf(store);
      await store.checkpoint();
      await store.put('k9', { v: 9 });
      const folder = copyOf(dir);
      fs.writeFileSync(path.join(folder, 'checkpoint.json.tmp'), fs.readFileSync(path.join(folder, 'checkpoint.json')).subarray(0, 30));
      const { store: again } = await openStore(new NodeStorageIo(), folder);
      expect(memoryOf(again)).to.deep.equal({ ...model, k9: { v: 9 } });
      expect(fs.existsSync(path.join(folder, 'checkpoint.json.tmp'))).to.equal(false);
      await again.close();
      await store.close();
    });

    it('restores the same map when a crash left the old segment next to the newer checkpoint', async () => {
      const store = await filled(new NodeStorageIo());
      const model = memoryOf(store);
      const oldSegment = fs.readFileSync(path.join(dir, segmentName(1)));
      await store.checkpoint();
      const folder = copyOf(dir);
      fs.writeFileSync(path.join(folder, segmentName(1)), oldSegment);
      const { store: again, report } = await openStore(new NodeStorageIo(), folder);
      expect(memoryOf(again)).to.deep.equal(model);
      expect(report.replayedRecords).to.equal(0);
      expect(fs.existsSync(path.join(folder, segmentName(1)))).to.equal(false);
      await again.close();
      await store.close();
    });

    it('restores the same map when a crash left a new empty segment and the old checkpoint', async () => {
      const store = await filled(new NodeStorageIo());
      await store.checkpoint();
      await store.put('k7', { v: 7 });
      const model = memoryOf(store);
      const folder = copyOf(dir);
      fs.writeFileSync(path.join(folder, segmentName(3)), '');
      const { store: again } = await openStore(new NodeStorageIo(), folder);
      expect(memoryOf(again)).to.deep.equal(model);
      await again.put('k8', { v: 8 });
      expect(await restoredFrom(folder)).to.deep.equal({ ...model, k8: { v: 8 } });
      await again.close();
      await store.close();
    });

    // A checkpoint opens the next segment before the old one has written what was queued for
    // it (`runCheckpoint`: AppendFile.open(next), then old.close()). A crash in that window
    // leaves a torn record at the end of the old segment and the new segment behind it.
    it('restores the intact records when a crash during a checkpoint left a torn record at the end of the old segment', async () => {
      const store = await filled(new NodeStorageIo());
      const model = memoryOf(store);
      await store.flush();
      const folder = copyOf(dir);
      await store.close();
      const old = path.join(folder, segmentName(1));
      const text = fs.readFileSync(old);
      const lastLine = text.subarray(text.lastIndexOf(0x0a, text.length - 2) + 1);
      fs.appendFileSync(old, lastLine.subarray(0, 12));
      fs.writeFileSync(path.join(folder, segmentName(2)), '');
      const o = await outcome(openStore(new NodeStorageIo(), folder));
      expect(o.ok, `restore refused: ${String((o as { error?: Error }).error?.message)}`).to.equal(true);
      expect(await restoredFrom(folder)).to.deep.equal(model);
    });

    it('applies commits in the order they were made when a checkpoint switches segments between them', async () => {
      const io = new FaultyIo();
      const { store } = await openStore(io, dir);
      await store.put('k', { v: 0 });
      // The first commit's sync is slow; a checkpoint starts meanwhile.
      const slowSync = io.hold((p) => p.kind === 'datasync' && p.file.endsWith(segmentName(1)));
      const first = store.put('k', { v: 1 });
      await slowSync.reached;
      const checkpoint = store.checkpoint();
      // Probe for a while: a store that wrote to the new segment during the switch would
      // acknowledge a probe from it before the first commit (the defect this test guards).
      let switched = false;
      const probes: Array<Promise<void>> = [];
      await waitTurns(() => {
        const probe = store.put('probe', { v: probes.length });
        probes.push(probe);
        void probe.then(() => { switched = true; }, () => undefined);
        return switched;
      }, 'a commit acknowledged from the new segment', 500).catch(() => undefined);
      expect(switched, 'nothing is acknowledged while the first commit is not synced').to.equal(false);
      const second = store.put('k', { v: 2 });
      const acknowledged: string[] = [];
      void first.then(() => acknowledged.push('first'));
      void second.then(() => acknowledged.push('second'));
      // The second commit must not be acknowledged before the first: give it the time a probe took.
      await waitTurns(() => acknowledged.length > 0, 'an acknowledgement', 1000).catch(() => undefined);
      slowSync.release();
      await Promise.all([first, second, checkpoint, ...probes]);
      expect(store.get('k'), 'memory holds the later commit').to.deep.equal({ v: 2 });
      expect(await restoredFrom(dir), 'disk').to.deep.equal(memoryOf(store));
      expect(acknowledged, 'order in which the commits were acknowledged').to.deep.equal(['first', 'second']);
      await store.close();
    });

    it('never revives a refused record whose bytes could not be cut before its segment was rotated', async () => {
      const io = new FaultyIo();
      const { store } = await openStore(io, dir);
      await store.put('a', { v: 1 });
      // The sync of one commit fails and so does cutting its bytes; then the checkpoint that
      // rotates the segment cannot write its checkpoint file.
      io.failAll('EIO', {
        match: (p) => (p.file.endsWith(segmentName(1)) && (p.kind === 'datasync' || p.kind === 'truncate')) || p.kind === 'replaceFile',
      });
      expect((await outcome(store.put('refused', { v: 666 }))).ok).to.equal(false);
      expect((await outcome(store.checkpoint())).ok).to.equal(false);
      io.clear();
      await store.put('b', { v: 2 });
      expect(memoryOf(store)).to.deep.equal({ a: { v: 1 }, b: { v: 2 } });
      // A crash now: what a restart restores.
      expect(await restoredFrom(dir)).to.deep.equal(memoryOf(store));
      await store.close();
    });
  });
});
