import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { bindingFor, checkDataDir } from '../../src/persistence/data-dir-binding';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { ConfigError } from '../../src/errors';

describe('DATA_DIR binding (mode and venues)', () => {
  let dir: string;
  const io = new NodeStorageIo();
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'binding-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const refused = async (wanted: ReturnType<typeof bindingFor>): Promise<ConfigError> => {
    try {
      await checkDataDir(io, dir, wanted);
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigError);
      return err as ConfigError;
    }
    throw new Error('the start was not refused');
  };

  it('binds a fresh DATA_DIR only when recorded, then accepts the same mode and venues in any order', async () => {
    const first = await checkDataDir(io, dir, bindingFor('live', ['upbit', 'kis']));
    expect(fs.existsSync(path.join(dir, 'binding.json')), 'nothing written before record').to.equal(false);
    await first.record();
    const stored = JSON.parse(fs.readFileSync(path.join(dir, 'binding.json'), 'utf8'));
    expect(stored).to.include({ mode: 'live' });
    expect(stored.venues).to.deep.equal(['kis', 'upbit']);
    const again = await checkDataDir(io, dir, bindingFor('live', ['kis', 'upbit', 'kis']));
    expect(again.binding.boundAt).to.equal(stored.boundAt);
  });

  it('refuses a paper DATA_DIR started live, naming DATA_DIR and the way forward', async () => {
    await (await checkDataDir(io, dir, bindingFor('paper', ['upbit']))).record();
    const err = await refused(bindingFor('live', ['upbit']));
    expect(err.message).to.match(/holds the proposals, positions and history of paper trading; this start asks for live trading on upbit/);
    expect(err.message).to.match(/Use a new DATA_DIR/);
    expect(err.message).to.include('TRADING_MODE=paper');
    expect(err.issues.map((i) => i.variable)).to.deep.equal(['DATA_DIR']);
  });

  it('refuses a live DATA_DIR started with other venues, or as paper', async () => {
    await (await checkDataDir(io, dir, bindingFor('live', ['upbit']))).record();
    expect((await refused(bindingFor('live', ['upbit', 'kis']))).message).to.include('EXECUTION_VENUE=upbit');
    expect((await refused(bindingFor('paper', ['paper']))).message).to.match(/live trading on upbit; this start asks for paper trading/);
  });

  it('binds a DATA_DIR that a live start left without a book (it failed before binding) to the next start', async () => {
    for (const f of ['state.json', 'telegram.json']) fs.writeFileSync(path.join(dir, f), '{}');
    fs.mkdirSync(path.join(dir, 'proposals'));
    await (await checkDataDir(io, dir, bindingFor('live', ['upbit']))).record();
  });

  it('treats a DATA_DIR with a paper book from before bindings as paper', async () => {
    fs.mkdirSync(path.join(dir, 'paper-venue'));
    await refused(bindingFor('live', ['upbit']));
    const paper = await checkDataDir(io, dir, bindingFor('paper', ['paper']));
    await paper.record();
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'binding.json'), 'utf8'))).to.include({ mode: 'paper', boundAt: 'before bindings were recorded' });
  });

  it('ignores EXECUTION_VENUE in paper mode (the paper venue fills everything)', async () => {
    await (await checkDataDir(io, dir, bindingFor('paper', ['upbit']))).record();
    await checkDataDir(io, dir, bindingFor('paper', ['paper']));
  });
});
