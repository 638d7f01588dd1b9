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

function readPid(file: string): number | undefined {
  try {
    const pid = Number((JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: number }).pid);
    return Number.isInteger(pid) ? pid : undefined;
  } catch {
    return undefined; // missing or unreadable: treated as stale
  }
}

function inUse(dataDir: string, file: string, pid: number): ConfigError {
  return new ConfigError(`DATA_DIR ${dataDir} is in use by process ${pid} (lock file ${file})`, [
    { variable: 'DATA_DIR', message: `in use by process ${pid}` },
  ]);
}

/** Takes the lock or throws naming the process that holds it. Returns a release function. */
export function acquireDataDirLock(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'service.lock');
  for (let attempt = 0; attempt < 5; attempt++) {
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
      const holder = readPid(file);
      if (holder !== undefined && holder !== process.pid && isAlive(holder)) throw inUse(dataDir, file, holder);
      // Stale (its process is gone, e.g. killed). Take it aside atomically and look at what was
      // taken: if another starting process replaced it meanwhile with its own live lock, put that
      // back and yield, so two processes never both believe they own DATA_DIR.
      const aside = `${file}.${process.pid}.stale`;
      try {
        fs.renameSync(file, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      const taken = readPid(aside);
      if (taken !== undefined && taken !== process.pid && isAlive(taken)) {
        try {
          fs.linkSync(aside, file);
        } finally {
          fs.rmSync(aside, { force: true });
        }
        throw inUse(dataDir, file, taken);
      }
      fs.rmSync(aside, { force: true });
    }
  }
  throw new ConfigError(`could not take the lock file ${file}`, [{ variable: 'DATA_DIR', message: 'lock file could not be taken' }]);
}
