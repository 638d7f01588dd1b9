import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { expect } from 'chai';
import { acquireDataDirLock } from '../../src/persistence/lock-file';

describe('DATA_DIR lock file', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lock-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses while a live process holds it, naming that process', async () => {
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)']);
    try {
      fs.writeFileSync(path.join(dir, 'service.lock'), JSON.stringify({ pid: other.pid }));
      expect(() => acquireDataDirLock(dir)).to.throw(`in use by process ${other.pid}`);
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'service.lock'), 'utf8')).pid).to.equal(other.pid);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('takes over a lock whose process is gone, and releases only its own', async () => {
    const gone = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => gone.once('exit', r));
    fs.writeFileSync(path.join(dir, 'service.lock'), JSON.stringify({ pid: gone.pid }));
    const release = acquireDataDirLock(dir);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'service.lock'), 'utf8')).pid).to.equal(process.pid);
    expect(fs.readdirSync(dir)).to.deep.equal(['service.lock']);
    release();
    expect(fs.existsSync(path.join(dir, 'service.lock'))).to.equal(false);
  });

  it('takes over an unreadable lock', () => {
    fs.writeFileSync(path.join(dir, 'service.lock'), '{"pi');
    const release = acquireDataDirLock(dir);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'service.lock'), 'utf8')).pid).to.equal(process.pid);
    release();
  });
});
