/**
 * Preloaded into the service under load (`NODE_OPTIONS=--import <this file>`, set by
 * `bench/run.ts`): counts the fsync and fdatasync calls made through `fs/promises` file handles,
 * which is how the storage engine makes every write durable, by part of DATA_DIR (see
 * `areaOf`), with the records (lines) written through the same handles; keeps the process's
 * CPU time and a histogram of its event-loop delay. On SIGUSR2 it writes
 * `{ seq, syncs, areas: { [area]: { syncs, records } }, userMs, systemMs, loop: { p50, p99, max } }` to the
 * file named by BENCH_PROBE_FILE (the loop delay since the previous report, in ms). Plain
 * JavaScript: it is loaded before tsx. The cost it adds is a counter per sync, a newline count
 * per write and a 5 ms timer.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.BENCH_PROBE_FILE;
const dataDir = path.resolve(process.env.DATA_DIR ?? '.');

/** The part of DATA_DIR a file or folder belongs to (as `bench/lib.ts` names them in process). */
function areaOf(target) {
  const rel = path.relative(dataDir, path.resolve(String(target))).split(path.sep).join('/');
  if (rel === 'proposals' || rel.startsWith('proposals/')) return 'live store';
  if (rel.startsWith('journal/proposals')) return 'archive';
  if (rel.startsWith('journal/signals')) return 'signals';
  if (rel === 'journal' || rel.startsWith('journal/')) return 'journal';
  if (rel.startsWith('paper-venue')) return 'paper venue';
  return 'other';
}

if (file) {
  const areas = {};
  const tally = (area) => (areas[area] ??= { syncs: 0, records: 0 });
  let syncs = 0;
  const areaOfHandle = new WeakMap();
  const open = fsp.open;
  fsp.open = async function counted(target, ...rest) {
    const handle = await open.call(this, target, ...rest);
    areaOfHandle.set(handle, areaOf(target));
    return handle;
  };
  const probe = await open(process.execPath, 'r');
  const proto = Object.getPrototypeOf(probe);
  await probe.close();
  for (const name of ['sync', 'datasync']) {
    const original = proto[name];
    proto[name] = function countedSync(...args) {
      syncs += 1;
      tally(areaOfHandle.get(this) ?? 'other').syncs += 1;
      return original.apply(this, args);
    };
  }
  const write = proto.write;
  proto.write = function countedWrite(...args) {
    const [data, offset, length] = args;
    if (Buffer.isBuffer(data)) {
      const from = typeof offset === 'number' ? offset : 0;
      const to = typeof length === 'number' ? from + length : data.length;
      let lines = 0;
      for (let i = data.indexOf(0x0a, from); i !== -1 && i < to; i = data.indexOf(0x0a, i + 1)) lines += 1;
      tally(areaOfHandle.get(this) ?? 'other').records += lines;
    }
    return write.apply(this, args);
  };
  // The histogram records the interval between 5 ms timer runs: lateness is that minus 5 ms.
  const RESOLUTION_MS = 5;
  const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  delay.enable();
  const late = (ns) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  let seq = 0;
  process.on('SIGUSR2', () => {
    seq += 1;
    const cpu = process.cpuUsage();
    const loop = { p50: late(delay.percentile(50)), p99: late(delay.percentile(99)), max: late(delay.max) };
    delay.reset();
    fs.writeFileSync(`${file}.tmp`, JSON.stringify({ seq, syncs, areas, userMs: cpu.user / 1000, systemMs: cpu.system / 1000, loop }));
    fs.renameSync(`${file}.tmp`, file);
  });
}
