import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import sinon from 'sinon';
import { AppendFile } from '../../src/persistence/append-file';
import { StorageError } from '../../src/errors';
import { FAULT_CODES, FaultyIo } from '../fakes/faulty-io';
import { outcome } from '../support/outcome';

/** Settles `promise` and tells how (without letting a rejection go unobserved). */
describe('AppendFile', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'append-file-'));
    file = path.join(dir, 'log.jsonl');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('covers the records appended in one turn with one sync, resolving each only after it, in order', async () => {
    const io = new FaultyIo();
    const log = await AppendFile.open(io, file);
    const sync = io.hold((p) => p.kind === 'datasync');
    const applied: number[] = [];
    const resolved: number[] = [];
    const receipts = Array.from({ length: 50 }, (_, i) => log.append(`record ${i}\n`, () => applied.push(i)));
    receipts.forEach((r, i) => void r.durable.then(() => resolved.push(i)));

    await sync.reached;
    // Every byte is written but the sync has not returned: nothing is durable yet.
    expect(io.points.filter((p) => p.kind === 'write' && p.done)).to.have.length(1);
    expect(fs.readFileSync(file, 'utf8').split('\n')).to.have.length(51);
    expect(applied).to.deep.equal([]);
    expect(resolved).to.deep.equal([]);
    expect(log.size).to.equal(0);

    sync.release();
    await Promise.all(receipts.map((r) => r.durable));
    const order = Array.from({ length: 50 }, (_, i) => i);
    expect(applied).to.deep.equal(order);
    expect(resolved).to.deep.equal(order);
    expect(log.stats.records).to.equal(50);
    expect(log.stats.syncs).to.equal(1);
    expect(io.points.filter((p) => p.kind === 'datasync')).to.have.length(1);
    // Offsets are where each record landed, one after the other.
    const text = fs.readFileSync(file);
    receipts.forEach((r, i) => expect(text.subarray(r.offset, r.offset + r.length).toString()).to.equal(`record ${i}\n`));
    expect(log.size).to.equal(text.length);
    await log.close();
  });

  it('writes records appended while a batch is in flight in a later batch, after it', async () => {
    const io = new FaultyIo();
    const log = await AppendFile.open(io, file);
    const sync = io.hold((p) => p.kind === 'datasync');
    const first = log.append('a\n');
    await sync.reached;
    const later = [log.append('b\n'), log.append('c\n')];
    let laterDone = false;
    void Promise.all(later.map((r) => r.durable)).then(() => { laterDone = true; });
    sync.release();
    await first.durable;
    expect(laterDone).to.equal(false);
    await Promise.all(later.map((r) => r.durable));
    expect(fs.readFileSync(file, 'utf8')).to.equal('a\nb\nc\n');
    expect(log.stats).to.deep.equal({ records: 3, syncs: 2 });
    await log.close();
  });

  for (const code of FAULT_CODES) {
    it(`refuses a batch and everything queued behind it, and cuts its bytes, when a short write fails with ${code}`, async () => {
      const observer = { writeFailed: sinon.spy(), lastFailure: null };
      const io = new FaultyIo(observer);
      const log = await AppendFile.open(io, file);
      await log.append('kept\n').durable;
      io.failNext(code, { match: (p) => p.kind === 'write', effect: 'partial' });
      const write = io.hold((p) => p.kind === 'write');
      const onDurable = sinon.spy();
      const refused = log.append('refused record\n', onDurable);
      await write.reached;
      const behind = log.append('queued behind\n', onDurable);
      write.release();

      for (const r of [refused, behind]) {
        const o = await outcome(r.durable);
        expect(o.ok).to.equal(false);
        const error = (o as { error: unknown }).error;
        expect(error).to.be.instanceOf(StorageError);
        expect(error).to.include({ code: 'storage_unavailable', errno: code, file });
      }
      expect(onDurable.called).to.equal(false);
      expect(fs.readFileSync(file, 'utf8')).to.equal('kept\n');
      expect(log.size).to.equal(5);
      expect(observer.writeFailed.calledOnce).to.equal(true);
      expect(observer.writeFailed.firstCall.args[0]).to.include({ errno: code, file });

      // Storage is back: the next record lands right after the last durable one.
      const next = log.append('next\n');
      expect(next.offset).to.equal(5);
      await next.durable;
      expect(fs.readFileSync(file, 'utf8')).to.equal('kept\nnext\n');
      await log.close();
    });
  }

  it('cuts the bytes of a refused record before the next write when cutting them at once failed too', async () => {
    const io = new FaultyIo();
    const log = await AppendFile.open(io, file);
    await log.append('kept\n').durable;
    io.failAll('EIO', { effect: 'partial' });
    expect((await outcome(log.append('refused record\n').durable)).ok).to.equal(false);
    // The cut failed as well: half of the refused record is still in the file.
    expect(io.failures.map((p) => p.kind)).to.deep.equal(['write', 'truncate']);
    expect(fs.readFileSync(file, 'utf8')).to.equal('kept\nrefused');

    io.clear();
    await log.append('next\n').durable;
    expect(fs.readFileSync(file, 'utf8')).to.equal('kept\nnext\n');
    await log.close();
  });

  it('refuses a record whose sync failed and removes its bytes from the file', async () => {
    const io = new FaultyIo();
    const log = await AppendFile.open(io, file);
    await log.append('kept\n').durable;
    io.failNext('EIO', { match: (p) => p.kind === 'datasync', effect: 'done' });
    const o = await outcome(log.append('written, not synced\n').durable);
    expect(o.ok).to.equal(false);
    expect(fs.readFileSync(file, 'utf8')).to.equal('kept\n');
    expect(log.stats).to.deep.equal({ records: 1, syncs: 1 });
    await log.close();
  });

  it('cuts what follows validLength (a torn last record) when opened with it, and appends after it', async () => {
    fs.writeFileSync(file, 'one\ntwo\nthr');
    const io = new FaultyIo();
    const log = await AppendFile.open(io, file, { validLength: fs.readFileSync(file).lastIndexOf(0x0a) + 1 });
    expect(log.size).to.equal(8);
    expect(fs.readFileSync(file, 'utf8')).to.equal('one\ntwo\n');
    expect(io.points.map((p) => p.kind)).to.deep.equal(['open', 'truncate', 'datasync']);
    await log.append('three\n').durable;
    expect(fs.readFileSync(file, 'utf8')).to.equal('one\ntwo\nthree\n');
    await log.close();
  });

  it('writes nothing while an exclusive step runs, and runs it after what was queued before it', async () => {
    const io = new FaultyIo();
    const log = await AppendFile.open(io, file);
    const before = log.append('before\n');
    let seen = '';
    const step = log.exclusive(async () => {
      seen = fs.readFileSync(file, 'utf8');
      const writes = io.points.length;
      await new Promise((resolve) => setImmediate(resolve));
      return io.points.length - writes;
    });
    const after = log.append('after\n');
    expect(await step).to.equal(0);
    expect(seen).to.equal('before\n');
    await Promise.all([before.durable, after.durable]);
    expect(fs.readFileSync(file, 'utf8')).to.equal('before\nafter\n');
    await log.close();
  });

  it('refuses a record appended after close', async () => {
    const log = await AppendFile.open(new FaultyIo(), file);
    await log.close();
    const o = await outcome(log.append('late\n').durable);
    expect(o.ok).to.equal(false);
    expect(fs.readFileSync(file, 'utf8')).to.equal('');
  });

  it('drains what is queued when closed', async () => {
    const io = new FaultyIo();
    const log = await AppendFile.open(io, file);
    const receipts = [log.append('a\n'), log.append('b\n')];
    await log.close();
    expect(io.points.every((p) => p.done)).to.equal(true);
    await Promise.all(receipts.map((r) => r.durable));
    expect(fs.readFileSync(file, 'utf8')).to.equal('a\nb\n');
  });
});

