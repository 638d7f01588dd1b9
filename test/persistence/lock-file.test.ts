import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'chai';
import { acquireDataDirLock } from '../../src/persistence/lock-file';

const LOCK_MODULE = pathToFileURL(path.resolve(import.meta.dirname, '../../src/persistence/lock-file.ts')).href;
const TSX_LOADER = pathToFileURL(path.resolve(import.meta.dirname, '../../node_modules/tsx/dist/loader.mjs')).href;

/** Blocks this thread, so that this process cannot reap its children meanwhile. */
function blockFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The state letter of /proc/<pid>/stat (`R`, `S`, `Z`, ...), or undefined when there is none. */
function procState(pid: number): string | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

function lockPid(dir: string): number {
  return (JSON.parse(fs.readFileSync(path.join(dir, 'service.lock'), 'utf8')) as { pid: number }).pid;
}

describe('DATA_DIR lock file', () => {
  let dir: string;
  let children: ChildProcess[];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lock-'));
    children = [];
  });
  afterEach(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses while a live process holds it, naming that process', async () => {
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)']);
    children.push(other);
    fs.writeFileSync(path.join(dir, 'service.lock'), JSON.stringify({ pid: other.pid }));
    expect(() => acquireDataDirLock(dir, { exitWaitMs: 300 })).to.throw(`in use by process ${other.pid}`);
    expect(lockPid(dir)).to.equal(other.pid);
  });

  it('takes over a lock whose process is gone, and releases only its own', async () => {
    const gone = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => gone.once('exit', r));
    fs.writeFileSync(path.join(dir, 'service.lock'), JSON.stringify({ pid: gone.pid }));
    const release = acquireDataDirLock(dir);
    expect(lockPid(dir)).to.equal(process.pid);
    expect(fs.readdirSync(dir)).to.deep.equal(['service.lock']);
    release();
    expect(fs.existsSync(path.join(dir, 'service.lock'))).to.equal(false);
  });

  it('takes over an unreadable lock', () => {
    fs.writeFileSync(path.join(dir, 'service.lock'), '{"pi');
    const release = acquireDataDirLock(dir);
    expect(lockPid(dir)).to.equal(process.pid);
    release();
  });

  describe('on Linux (/proc)', () => {
    before(function () {
      if (process.platform !== 'linux') this.skip();
    });

    it('refuses when another running service process took the lock, after waiting for it to exit', async function () {
      this.timeout(30_000);
      // The other process takes the lock with this very code, as a second service would.
      const script = `import { acquireDataDirLock } from ${JSON.stringify(LOCK_MODULE)}; acquireDataDirLock(${JSON.stringify(dir)}); process.stdout.write('locked\\n'); setTimeout(() => {}, 20000);`;
      const holder = spawn(process.execPath, ['--import', TSX_LOADER, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(holder);
      await new Promise<void>((resolve, reject) => {
        holder.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('locked')) resolve(); });
        holder.once('exit', (code) => reject(new Error(`the holder exited with ${code} before taking the lock`)));
      });
      const started = Date.now();
      expect(() => acquireDataDirLock(dir)).to.throw(`in use by process ${holder.pid}`);
      expect(Date.now() - started, 'waited for the holder before refusing').to.be.at.least(2000);
      expect(lockPid(dir)).to.equal(holder.pid);
    });

    it('takes a lock whose process is a zombie (exited, not yet reaped by its parent)', () => {
      // A child of this process that has exited stays a zombie until this process reaps it,
      // which Node does from its event loop: blocking the thread here keeps it a zombie.
      const child = spawn(process.execPath, ['-e', '']);
      children.push(child);
      const until = Date.now() + 10_000;
      while (procState(child.pid!) !== 'Z' && Date.now() < until) blockFor(10);
      expect(procState(child.pid!), 'the holder is a zombie').to.equal('Z');
      fs.writeFileSync(path.join(dir, 'service.lock'), JSON.stringify({ pid: child.pid }));

      const release = acquireDataDirLock(dir);

      expect(procState(child.pid!), 'still a zombie when the lock was taken').to.equal('Z');
      expect(lockPid(dir)).to.equal(process.pid);
      release();
    });

    it('takes the lock when its holder exits within the wait', () => {
      const exiting = spawn('sleep', ['0.3']);
      children.push(exiting);
      fs.writeFileSync(path.join(dir, 'service.lock'), JSON.stringify({ pid: exiting.pid }));

      // A generous bound, so a loaded machine cannot fail it; the holder exits after 0.3 s.
      const release = acquireDataDirLock(dir, { exitWaitMs: 5000 });

      expect(lockPid(dir)).to.equal(process.pid);
      release();
    });

    it('takes a lock whose pid now belongs to another process (start time differs)', () => {
      // The record of a process that started before the pid's present owner: this one's own.
      const releaseOwn = acquireDataDirLock(dir);
      const earlier = JSON.parse(fs.readFileSync(path.join(dir, 'service.lock'), 'utf8')) as { procStart?: unknown };
      releaseOwn();
      expect(earlier.procStart, 'the lock records its start time').to.be.a('string');
      const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)']);
      children.push(other);
      fs.writeFileSync(path.join(dir, 'service.lock'), JSON.stringify({ pid: other.pid, procStart: earlier.procStart }));

      const release = acquireDataDirLock(dir, { exitWaitMs: 300 });

      expect(lockPid(dir)).to.equal(process.pid);
      release();
    });
  });
});
