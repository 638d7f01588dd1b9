import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { DedupeWindow } from '../../src/runtime/dedupe-window';
import { SignalRegistry } from '../../src/journal/tracker';
import { NodeStorageIo } from '../../src/persistence/storage-io';

const io = new NodeStorageIo();

describe('DedupeWindow', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dedupe-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is rebuilt from the signal registry after a restart, keeping only keys inside the window', async () => {
    let now = Date.parse('2026-11-26T12:00:00Z');
    const reg = new SignalRegistry(io, dir, () => now);
    const add = (id: string, key: string, at: number) => {
      const receivedAt = new Date(at).toISOString();
      return reg.add({ id, receivedAt, status: 'received', dedupeKey: key, signal: { id, receivedAt, source: 'tradingview', symbol: 'BTC/KRW', action: 'buy' } });
    };
    await add('sig-20261126-00000000000a', 'tv:id:old', now - 400_000);
    await add('sig-20261126-00000000000b', 'tv:id:new', now - 100_000);
    await reg.close();
    const window = DedupeWindow.restore(new SignalRegistry(io, dir, () => now), 300, () => now);
    expect(window.seen('tv:id:new')).to.equal('sig-20261126-00000000000b');
    expect(window.seen('tv:id:old')).to.equal(undefined);
    now += 200_001;
    expect(window.seen('tv:id:new')).to.equal(undefined);
  });
});
