import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { JsonDocument } from '../../src/persistence/json-document';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { InvariantError, StorageError } from '../../src/errors';
import { FAULT_CODES, FaultyIo } from '../fakes/faulty-io';
import { outcome } from '../support/outcome';

interface Doc {
  version: 1;
  counter: number;
  notes: string[];
}

const initial = (): Doc => ({ version: 1, counter: 0, notes: [] });

describe('JsonDocument', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'json-document-'));
    file = path.join(dir, 'doc.json');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const onDisk = (): Doc => JSON.parse(fs.readFileSync(file, 'utf8')) as Doc;

  it('resolves a change once the file holds it, and reopens with it', async () => {
    const io = new FaultyIo();
    const doc = await JsonDocument.open<Doc>(io, file, initial());
    await doc.update((d) => { d.counter = 1; });
    expect(onDisk().counter).to.equal(1);
    expect(io.points.map((p) => p.kind)).to.deep.equal(['replaceFile']);
    const again = await JsonDocument.open<Doc>(new NodeStorageIo(), file, initial());
    expect(again.data).to.deep.equal({ version: 1, counter: 1, notes: [] });
  });

  it('writes the changes made in one turn with one write', async () => {
    const doc = await JsonDocument.open<Doc>(new NodeStorageIo(), file, initial());
    await Promise.all(Array.from({ length: 10 }, (_, i) => doc.update((d) => { d.notes.push(`n${i}`); })));
    expect(doc.writeCount).to.equal(1);
    expect(onDisk().notes).to.have.length(10);
  });

  for (const code of FAULT_CODES) {
    it(`rolls the data back to what is on disk and rejects with a StorageError when the write fails with ${code}`, async () => {
      const io = new FaultyIo();
      const doc = await JsonDocument.open<Doc>(io, file, initial());
      await doc.update((d) => { d.counter = 1; d.notes.push('kept'); });
      io.failNext(code);
      const o = await outcome(doc.update((d) => { d.counter = 2; d.notes.push('refused'); }));
      expect(o.ok).to.equal(false);
      expect((o as { error: unknown }).error).to.be.instanceOf(StorageError).and.include({ errno: code, file });
      expect(doc.data).to.deep.equal(onDisk());
      expect(doc.data).to.deep.equal({ version: 1, counter: 1, notes: ['kept'] });
      expect((await outcome(doc.flush())).ok, 'nothing left to write').to.equal(true);
      // Storage is back: the next change is written from the rolled-back data.
      await doc.update((d) => { d.counter += 10; });
      expect(onDisk()).to.deep.equal({ version: 1, counter: 11, notes: ['kept'] });
    });
  }

  it('refuses a change scheduled while a failing write was in flight, rolling it back too', async () => {
    const io = new FaultyIo();
    const doc = await JsonDocument.open<Doc>(io, file, initial());
    await doc.update((d) => { d.notes.push('kept'); });
    io.failNext('EIO');
    const write = io.hold((p) => p.kind === 'replaceFile');
    const first = doc.update((d) => { d.notes.push('first'); });
    await write.reached;
    const second = doc.update((d) => { d.notes.push('second'); });
    const flushed = doc.flush();
    write.release();
    const outcomes = await Promise.all([outcome(first), outcome(second), outcome(flushed)]);
    expect(outcomes.map((o) => o.ok)).to.deep.equal([false, false, false]);
    for (const o of outcomes) expect((o as { error: unknown }).error).to.be.instanceOf(StorageError).and.include({ errno: 'EIO' });
    expect(doc.data).to.deep.equal(onDisk());
    expect(doc.data.notes).to.deep.equal(['kept']);
    // Only the failing write reached the file system: the second change was refused without one.
    expect(io.points.filter((p) => p.kind === 'replaceFile')).to.have.length(2);

    await doc.update((d) => { d.notes.push('third'); });
    expect(onDisk().notes).to.deep.equal(['kept', 'third']);
  });

  it('takes a change made once a failed write has been rolled back', async () => {
    const io = new FaultyIo();
    const doc = await JsonDocument.open<Doc>(io, file, initial());
    io.failNext('ENOSPC');
    const retried = doc.update((d) => { d.counter = 1; }).catch(() => doc.update((d) => { d.counter = 2; }));
    await retried;
    expect(doc.data.counter).to.equal(2);
    expect(onDisk().counter).to.equal(2);
  });

  it('returns to the initial data when the first write of a new document fails', async () => {
    const io = new FaultyIo();
    const doc = await JsonDocument.open<Doc>(io, file, initial());
    io.failNext('EROFS');
    const o = await outcome(doc.update((d) => { d.counter = 5; }));
    expect(o.ok).to.equal(false);
    expect(doc.data).to.deep.equal(initial());
    expect(fs.existsSync(file)).to.equal(false);
  });

  it('reports a failed write to the observer', async () => {
    const failures: StorageError[] = [];
    const io = new FaultyIo({ writeFailed: (e) => { failures.push(e); }, lastFailure: null });
    const doc = await JsonDocument.open<Doc>(io, file, initial());
    io.failNext('ENOSPC');
    await outcome(doc.update((d) => { d.counter = 1; }));
    expect(failures.map((e) => [e.errno, e.file])).to.deep.equal([['ENOSPC', file]]);
  });

  it('refuses to open a file that is not valid JSON, naming it', async () => {
    fs.writeFileSync(file, '{"version":1,"coun');
    const o = await outcome(JsonDocument.open<Doc>(new NodeStorageIo(), file, initial()));
    expect((o as { error: unknown }).error).to.be.instanceOf(InvariantError).and.include({ code: 'corrupt_store' });
    expect(((o as { error: unknown }).error as Error).message).to.include(file);
    expect(fs.readFileSync(file, 'utf8')).to.equal('{"version":1,"coun');
  });
});
