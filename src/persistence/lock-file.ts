/**
 * A lock file in DATA_DIR: one live process owns the data. lowdb does not lock, so a second
 * process writing the same files would lose updates.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock or throws naming the process that holds it. Returns a release function. */
export function acquireDataDirLock(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'service.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      fs.writeSync(fd, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }));
      fs.closeSync(fd);
      return () => {
        try {
          const held = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: number };
          if (held.pid === process.pid) fs.unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let pid = NaN;
      try {
        pid = Number((JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: number }).pid);
      } catch {
        // unreadable lock: treat as stale
      }
      if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) {
        throw new ConfigError(`DATA_DIR ${dataDir} is in use by process ${pid} (lock file ${file})`, [
          { variable: 'DATA_DIR', message: `in use by process ${pid}` },
        ]);
      }
      fs.rmSync(file, { force: true }); // stale: its process is gone (e.g. killed)
    }
  }
  throw new ConfigError(`could not take the lock file ${file}`, [{ variable: 'DATA_DIR', message: 'lock file could not be taken' }]);
}
