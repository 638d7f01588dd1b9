/**
 * A DATA_DIR remembers the mode and venues it was made for (`binding.json`), so that proposals,
 * positions and history recorded against one account are never restored against another: a paper
 * DATA_DIR started live (or a live one started with other venues) is refused with the way
 * forward. A DATA_DIR from before the binding existed, with a paper book in it, was paper: the
 * only mode there was.
 */
import path from 'node:path';
import { ConfigError, InvariantError } from '../errors';
import type { StorageIo } from './storage-io';

export interface DataDirBinding {
  version: 1;
  mode: 'paper' | 'live';
  /** Sorted; `['paper']` in paper mode, whatever EXECUTION_VENUE says (the paper venue fills everything). */
  venues: string[];
  boundAt: string;
}

/**
 * What shows that a DATA_DIR from before bindings were recorded traded on paper: the paper
 * venue's book (every such DATA_DIR has one once it started). Other files are made by any start,
 * a live one that failed before it was bound too.
 */
const PAPER_MARKERS = ['paper-venue', 'paper-venue.json'];

/** The binding a configuration asks for. */
export function bindingFor(mode: 'paper' | 'live', venues: readonly string[]): Omit<DataDirBinding, 'version' | 'boundAt'> {
  return { mode, venues: mode === 'paper' ? ['paper'] : [...new Set(venues)].sort() };
}

/**
 * Checks that an existing DATA_DIR was made for `wanted`; throws a `ConfigError` naming DATA_DIR
 * (and what to do) when it was made for another mode or venues. `record` binds a fresh one: call
 * it once the start has got far enough that the DATA_DIR will be used (a start that fails on
 * something else leaves a fresh DATA_DIR unbound).
 */
export async function checkDataDir(io: StorageIo, dataDir: string, wanted: Omit<DataDirBinding, 'version' | 'boundAt'>, now: () => number = Date.now): Promise<{ binding: DataDirBinding; record: () => Promise<void> }> {
  const file = path.join(dataDir, 'binding.json');
  const raw = await io.readFile(file);
  let bound: DataDirBinding | undefined;
  if (raw) {
    try {
      bound = JSON.parse(raw.toString()) as DataDirBinding;
    } catch (err) {
      throw new InvariantError('corrupt_store', `${file} is not valid JSON (${(err as Error).message}): restore it from a backup of DATA_DIR`, { file });
    }
  } else {
    const present = new Set(await io.list(dataDir));
    if (PAPER_MARKERS.some((m) => present.has(m))) bound = { version: 1, mode: 'paper', venues: ['paper'], boundAt: 'before bindings were recorded' };
  }
  if (bound && (bound.mode !== wanted.mode || bound.venues.join(',') !== wanted.venues.join(','))) {
    throw new ConfigError(mismatchMessage(dataDir, bound, wanted), [{ variable: 'DATA_DIR', message: `was made for ${describe(bound)}, not ${describe(wanted)}` }]);
  }
  const binding: DataDirBinding = bound ?? { version: 1, ...wanted, boundAt: new Date(now()).toISOString() };
  const record = async (): Promise<void> => {
    if (!raw) await io.replaceFile(file, Buffer.from(`${JSON.stringify(binding, null, 2)}\n`));
  };
  return { binding, record };
}

function describe(b: Pick<DataDirBinding, 'mode' | 'venues'>): string {
  return b.mode === 'paper' ? 'paper trading' : `live trading on ${b.venues.join(', ')}`;
}

function mismatchMessage(dataDir: string, bound: DataDirBinding, wanted: Pick<DataDirBinding, 'mode' | 'venues'>): string {
  return [
    `DATA_DIR ${dataDir} holds the proposals, positions and history of ${describe(bound)}; this start asks for ${describe(wanted)}.`,
    `Its proposals must never go out to another account. Use a new DATA_DIR for ${describe(wanted)} (the old one stays as it is),`,
    `or start with the settings it was made for (TRADING_MODE=${bound.mode}${bound.mode === 'live' ? `, EXECUTION_VENUE=${bound.venues.join(',')}` : ''}).`,
  ].join(' ');
}
