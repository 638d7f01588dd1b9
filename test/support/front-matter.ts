/**
 * A strict reader of the YAML subset the vault writes in its notes' front matter: block mappings
 * and sequences indented by two spaces; scalars in JSON form (double-quoted strings, numbers,
 * true/false/null) or `[]` / `{}`. Anything else is an error, so a note whose free text broke out
 * of its value fails the test that reads it. Every string in that form is also valid YAML.
 */
import { expect } from 'chai';

export type Yaml = string | number | boolean | null | Yaml[] | { [k: string]: Yaml };

/** The front matter of a note as data (strictly read), and the body after it. */
export function parseFrontMatter(note: string): { data: Record<string, Yaml>; body: string } {
  const lines = note.split('\n');
  expect(lines[0], 'a note starts with front matter').to.equal('---');
  const end = lines.indexOf('---', 1);
  expect(end, 'front matter is closed').to.be.greaterThan(0);
  const block = lines.slice(1, end);
  const [data, next] = parseMapping(block, 0, 0);
  expect(next, `every front-matter line is read (stopped at ${JSON.stringify(block[next])})`).to.equal(block.length);
  return { data: data as Record<string, Yaml>, body: lines.slice(end + 1).join('\n') };
}

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

function scalar(text: string): Yaml {
  if (text === '[]') return [];
  if (text === '{}') return {};
  if (!/^("|-?\d|true$|false$|null$)/.test(text)) throw new Error(`not a scalar of the subset: ${text}`);
  return JSON.parse(text) as Yaml;
}

function parseMapping(lines: string[], at: number, indent: number): [Record<string, Yaml>, number] {
  const out: Record<string, Yaml> = {};
  let i = at;
  while (i < lines.length && indentOf(lines[i]!) === indent && !lines[i]!.trimStart().startsWith('- ')) {
    const m = /^([A-Za-z_][A-Za-z0-9_-]*|"(?:[^"\\]|\\.)*"):( (.*))?$/.exec(lines[i]!.slice(indent));
    if (!m) throw new Error(`not a mapping line: ${JSON.stringify(lines[i])}`);
    const key = m[1]!.startsWith('"') ? (JSON.parse(m[1]!) as string) : m[1]!;
    if (key in out) throw new Error(`key ${key} twice`);
    if (m[3] !== undefined) {
      out[key] = scalar(m[3]);
      i += 1;
    } else {
      const [value, next] = parseBlock(lines, i + 1, indent + 2);
      out[key] = value;
      i = next;
    }
  }
  if (i < lines.length && indentOf(lines[i]!) > indent) throw new Error(`unexpected indentation: ${JSON.stringify(lines[i])}`);
  return [out, i];
}

function parseBlock(lines: string[], at: number, indent: number): [Yaml, number] {
  const line = lines[at];
  if (line === undefined || indentOf(line) !== indent) throw new Error(`an empty block at line ${at}`);
  return line.trimStart().startsWith('- ') ? parseSequence(lines, at, indent) : parseMapping(lines, at, indent);
}

function parseSequence(lines: string[], at: number, indent: number): [Yaml[], number] {
  const out: Yaml[] = [];
  let i = at;
  while (i < lines.length && indentOf(lines[i]!) === indent && lines[i]!.trimStart().startsWith('- ')) {
    const rest = lines[i]!.slice(indent + 2);
    if (/^([A-Za-z_][A-Za-z0-9_-]*|"(?:[^"\\]|\\.)*"):( |$)/.test(rest)) {
      // A mapping item: its first key shares the dash line, the others sit under it.
      const copy = [...lines];
      copy[i] = ' '.repeat(indent + 2) + rest;
      const [map, next] = parseMapping(copy, i, indent + 2);
      out.push(map);
      i = next;
    } else {
      out.push(scalar(rest));
      i += 1;
    }
  }
  return [out, i];
}

/** Every `[[link]]` a note makes, in order (escaped brackets make none). */
export function noteLinks(text: string): string[] {
  return [...text.matchAll(/(?<!\\)\[\[([^\]]*)\]\]/g)].map((m) => m[1]!);
}
