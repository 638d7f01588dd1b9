/**
 * Reads the Prometheus text format (what `GET /metrics` answers) into samples, so tests can
 * compare figures exactly.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample line of a Prometheus text exposition (comments skipped). */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The series of one metric name as `{ 'a="x",b="y"': value }` (labels sorted; `''` for none). */
export function series(samples: Sample[], name: string, drop: string[] = []): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.name !== name) continue;
    const key = Object.keys(s.labels).filter((k) => !drop.includes(k)).sort().map((k) => `${k}="${s.labels[k]}"`).join(',');
    out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}

/** The value of the one sample of `name` with exactly these labels, or undefined. */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.keys(labels).sort().map((k) => `${k}="${labels[k]}"`).join(',');
  return series(samples, name)[want];
}
