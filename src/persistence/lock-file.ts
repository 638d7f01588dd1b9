/**
 * A lock file in DATA_DIR: one live process owns the data. lowdb does not lock, so a second
 * process writing the same files would lose updates.
 *
 * The lock names its process by pid and, on Linux, by that process's start time, so that only a
 * running holder counts:
 * - a zombie (it has exited, its parent has not reaped it yet) holds nothing. After a SIGKILL of
 *   `npm start`'s process group the service is orphaned and waits for init to reap it, which
 *   some inits do only seconds later;
 * - a pid that now belongs to another process (after a reboot, pids are handed out again) holds
 *   nothing either: its start time differs from the one in the lock;
 * - a holder that is still running gets a short, bounded time to exit (a restart right after a
 *   stop) before the start is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors';

/** How long a start waits for a running holder to exit before refusing. */
const EXIT_WAIT_MS = 2000;
const POLL_MS = 50;

/** What the lock file holds. `procStart`: start time in clock ticks after boot (Linux only). */
interface LockRecord {
  pid: number;
  procStart?: string;
}

/**
 * The state letter and start time of a process from /proc/<pid>/stat (fields 3 and 22), or
 * undefined when it cannot be read (no /proc, a hidden pid, or the process is gone).
 */
function procStat(pid: number): { state: string; start: string } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 is the command name in parentheses and may itself hold spaces or ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const start = fields[19];
  return state !== undefined && start !== undefined ? { state, start } : undefined;
}

/** True while the lock's process runs: it exists, is no zombie, and is the process that wrote it. */
function isRunning(holder: LockRecord): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(holder.pid);
  if (!stat) return true; // no /proc to ask (not Linux, or hidden): the signal check decides
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return holder.procStart === undefined || holder.procStart === stat.start;
}

function readHolder(file: string): LockRecord | undefined {
  try {
    const held = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: unknown; procStart?: unknown };
    const pid = Number(held.pid);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    return typeof held.procStart === 'string' ? { pid, procStart: held.procStart } : { pid };
  } catch {
    return undefined; // missing or unreadable: treated as stale
  }
}

/** A holder other than this process that is running now. */
function otherRunning(holder: LockRecord | undefined): holder is LockRecord {
  return holder !== undefined && holder.pid !== process.pid && isRunning(holder);
}

/** The pid of the running process that holds `dataDir`'s lock, or undefined (no lock, or a stale one). */
export function lockHolder(dataDir: string): number | undefined {
  const holder = readHolder(path.join(dataDir, 'service.lock'));
  return holder && isRunning(holder) ? holder.pid : undefined;
}

/** Blocks the thread: the lock is taken synchronously at start-up, before anything else runs. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Waits (bounded) for a running holder to exit; true if it still runs when the time is up. */
function stillRunningAfterWait(holder: LockRecord, waitMs: number): boolean {
  const until = Date.now() + waitMs;
  while (isRunning(holder)) {
    if (Date.now() >= until) return true;
    sleepSync(POLL_MS);
  }
  return false;
}

function inUse(dataDir: string, file: string, pid: number): ConfigError {
  return new ConfigError(`DATA_DIR ${dataDir} is in use by process ${pid} (lock file ${file})`, [
    { variable: 'DATA_DIR', message: `in use by process ${pid}` },
  ]);
}

/**
 * Takes the lock or throws naming the process that holds it. Returns a release function.
 * `exitWaitMs`: how long to wait for a running holder to exit before refusing (default 2 s).
 */
export function acquireDataDirLock(dataDir: string, opts: { exitWaitMs?: number } = {}): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'service.lock');
  const own = procStat(process.pid);
  const record: LockRecord & { startedAt: string } = { pid: process.pid, ...(own ? { procStart: own.start } : {}), startedAt: new Date().toISOString() };
  let waited = false;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      fs.writeSync(fd, JSON.stringify(record));
      fs.closeSync(fd);
      return () => {
        try {
          if (readHolder(file)?.pid === process.pid) fs.unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readHolder(file);
      if (otherRunning(holder)) {
        // Waited once already: a holder that turned up meanwhile is a live competitor.
        if (waited || stillRunningAfterWait(holder, opts.exitWaitMs ?? EXIT_WAIT_MS)) throw inUse(dataDir, file, holder.pid);
        waited = true;
      }
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
      const taken = readHolder(aside);
      if (otherRunning(taken)) {
        try {
          fs.linkSync(aside, file);
        } finally {
          fs.rmSync(aside, { force: true });
        }
        throw inUse(dataDir, file, taken.pid);
      }
      fs.rmSync(aside, { force: true });
    }
  }
  throw new ConfigError(`could not take the lock file ${file}`, [{ variable: 'DATA_DIR', message: 'lock file could not be taken' }]);
}
