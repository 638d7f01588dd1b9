/**
 * Keeps texts within Telegram's size limits. Message texts (sendMessage, editMessageText) may have
 * at most 4096 characters after entity parsing, counted in UTF-16 code units; a callback answer at
 * most 200. Pure: cuts strings, never throws for a long text.
 */

/** Largest message text Telegram accepts, in UTF-16 units after entity parsing. */
export const TELEGRAM_TEXT_LIMIT = 4096;

/** Largest callback answer (answerCallbackQuery text) Telegram accepts. */
export const CALLBACK_ANSWER_LIMIT = 200;

const ELLIPSIS = '…';

type Token =
  | { kind: 'open'; name: string; raw: string }
  | { kind: 'close'; name: string; raw: string }
  | { kind: 'text'; raw: string; visible: number };

// A tag with optional attributes; quoted values may hold `>`.
const TAG = /<(\/?)([a-zA-Z][\w-]*)((?:[^>"']|"[^"]*"|'[^']*')*)>/y;
const ENTITY = /&(?:([a-zA-Z]+)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));/y;
const NAMED = new Set(['lt', 'gt', 'amp', 'quot']);

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** How many UTF-16 units an entity becomes once parsed; unknown named entities stay literal. */
function entityWidth(m: RegExpExecArray): number {
  if (m[1] !== undefined) return NAMED.has(m[1]) ? 1 : m[0].length;
  const code = m[2] !== undefined ? Number(m[2]) : Number.parseInt(m[3]!, 16);
  return code > 0xffff ? 2 : 1;
}

/** Splits Telegram HTML into tags, entities and single characters (a surrogate pair is one). */
function tokenize(html: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < html.length) {
    const ch = html[i];
    if (ch === '<') {
      TAG.lastIndex = i;
      const m = TAG.exec(html);
      if (m) {
        tokens.push({ kind: m[1] ? 'close' : 'open', name: m[2]!.toLowerCase(), raw: m[0] });
        i += m[0].length;
        continue;
      }
    } else if (ch === '&') {
      ENTITY.lastIndex = i;
      const m = ENTITY.exec(html);
      if (m) {
        tokens.push({ kind: 'text', raw: m[0], visible: entityWidth(m) });
        i += m[0].length;
        continue;
      }
    }
    const pair = isHighSurrogate(html.charCodeAt(i)) && isLowSurrogate(html.charCodeAt(i + 1));
    const raw = html.slice(i, pair ? i + 2 : i + 1);
    tokens.push({ kind: 'text', raw, visible: raw.length });
    i += raw.length;
  }
  return tokens;
}

/** Tags still open after the first `count` tokens, outermost first. */
function openTags(tokens: readonly Token[], count: number): string[] {
  const stack: string[] = [];
  for (const t of tokens.slice(0, count)) {
    if (t.kind === 'open') stack.push(t.name);
    // A close tag that does not match the innermost open tag (malformed input) is kept as it is.
    else if (t.kind === 'close' && stack[stack.length - 1] === t.name) stack.pop();
  }
  return stack;
}

function closers(stack: readonly string[]): string {
  return stack.toReversed().map((name) => `</${name}>`).join('');
}

/**
 * How many tokens fit so that kept raw text + closing tags + ellipsis ≤ limit. That cost never
 * grows when tokens are dropped from the end, so the first token that overflows ends the search.
 */
function longestFit(tokens: readonly Token[], limit: number): number {
  const stack: string[] = [];
  let raw = 0;
  let closing = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    raw += t.raw.length;
    if (t.kind === 'open') {
      stack.push(t.name);
      closing += t.name.length + 3;
    } else if (t.kind === 'close' && stack[stack.length - 1] === t.name) {
      stack.pop();
      closing -= t.name.length + 3;
    }
    if (raw + closing + ELLIPSIS.length > limit) return i;
  }
  return tokens.length;
}

function isSpace(t: Token): boolean {
  return t.kind === 'text' && (t.raw === ' ' || t.raw === '\n');
}

/** Moves the cut back to the last space or line break within the last tenth, then drops trailing blanks and empty tags. */
function tidyCut(tokens: readonly Token[], cut: number): number {
  let visible = 0;
  for (const t of tokens.slice(0, cut)) if (t.kind === 'text') visible += t.visible;
  const window = Math.floor(visible / 10);
  let dropped = 0;
  for (let j = cut - 1; j >= 0 && dropped <= window; j--) {
    const t = tokens[j]!;
    if (isSpace(t)) {
      cut = j;
      break;
    }
    if (t.kind === 'text') dropped += t.visible;
  }
  while (cut > 0 && (tokens[cut - 1]!.kind === 'open' || isSpace(tokens[cut - 1]!))) cut--;
  return cut;
}

/** UTF-16 length of the text Telegram shows: tags removed, each entity as the character it names. */
function visibleLength(tokens: readonly Token[]): number {
  let n = 0;
  for (const t of tokens) if (t.kind === 'text') n += t.visible;
  return n;
}

function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
}

/**
 * Fits Telegram HTML (our renderers' output) into `limit`. Returned unchanged when its visible
 * length (what Telegram counts) is within the limit; otherwise cut between tags, entities and
 * surrogate pairs, preferably at a space or line break, with `…` and every open tag closed.
 */
export function fitHtml(html: string, limit: number = TELEGRAM_TEXT_LIMIT): string {
  checkLimit(limit);
  const tokens = tokenize(html);
  if (visibleLength(tokens) <= limit) return html;
  // A cut text is bounded by its raw length (tags and entities as written), which is never below
  // the visible length: safe whatever Telegram counts, and for callers that store or log the raw.
  const cut = tidyCut(tokens, longestFit(tokens, limit));
  const kept = tokens.slice(0, cut).map((t) => t.raw).join('');
  return `${kept}${ELLIPSIS}${closers(openTags(tokens, cut))}`;
}

/** Fits plain text (a callback answer) into `limit` UTF-16 units, with `…`, never halving a surrogate pair. */
export function fitPlain(text: string, limit: number = CALLBACK_ANSWER_LIMIT): string {
  checkLimit(limit);
  if (text.length <= limit) return text;
  let cut = limit - ELLIPSIS.length;
  if (cut > 0 && isHighSurrogate(text.charCodeAt(cut - 1))) cut--;
  return `${text.slice(0, cut).trimEnd()}${ELLIPSIS}`;
}
