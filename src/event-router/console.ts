/**
 * `GET /`: the operator console, a page with its script and style (src/event-router/console/),
 * served as they are: no build step. The page asks for a token (kept in sessionStorage only),
 * reads the live stream with `fetch` and the bearer header, and writes every value with
 * textContent, so nothing from a signal can run as markup. docs: runbooks/console.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ConsoleAsset {
  path: string;
  type: string;
  body: string;
}

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'console');

/** The console's files, read once when the HTTP app is made. */
export function consoleAssets(): ConsoleAsset[] {
  const read = (name: string) => fs.readFileSync(path.join(DIR, name), 'utf8');
  return [
    { path: '/', type: 'html', body: read('index.html') },
    { path: '/console.js', type: 'text/javascript', body: read('console.js') },
    { path: '/console.css', type: 'text/css', body: read('console.css') },
  ];
}
