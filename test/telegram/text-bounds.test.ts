import { expect } from 'chai';
import fc from 'fast-check';
import { escapeHtml } from '../../src/proposal/card-renderer';
import { CALLBACK_ANSWER_LIMIT, TELEGRAM_TEXT_LIMIT, fitHtml, fitPlain } from '../../src/telegram/text-bounds';

const TAGS = ['b', 'i', 'code', 'pre', 'a'] as const;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Problems with a text as Telegram HTML: only our tags, each closed in order, no `<`, `>` or `&`
 * outside markup and entities (so no entity cut in half), no lone surrogate. Empty when well-formed.
 */
function htmlProblems(html: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  for (const m of html.matchAll(/<(\/?)(b|i|code|pre|a)( href="[^"<>]*")?>|&(?:amp|lt|gt|quot);|[<>&]/g)) {
    const [raw, slash, name, href] = m;
    if (name === undefined) {
      if (raw.length === 1) problems.push(`stray ${raw} at ${m.index}`);
    } else if (slash) {
      if (href !== undefined) problems.push(`attribute on a closing tag at ${m.index}`);
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open ?? 'nothing'}> at ${m.index}`);
    } else {
      if ((name === 'a') !== (href !== undefined)) problems.push(`bad attributes on <${name}> at ${m.index}`);
      stack.push(name);
    }
  }
  if (stack.length > 0) problems.push(`left open: ${stack.join(', ')}`);
  if (LONE_SURROGATE.test(html)) problems.push('lone surrogate');
  return problems;
}

/** The text Telegram shows: tags removed, entities decoded. */
function visibleText(html: string): string {
  const names: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"' };
  return html.replace(/<[^>]*>/g, '').replace(/&(amp|lt|gt|quot);/g, (_, n: string) => names[n]!);
}

/** Plain text pieces: emoji and other astral characters, the characters HTML escapes, blanks, long runs. */
const plain = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('😀', '👍🏽', '𝔘', '<', '>', '&', '"', ' ', '\n', 'word', '&amp;', 'a &lt; b'),
  fc.tuple(fc.constantFrom('x', '😀', '&', ' <', 'ab '), fc.integer({ min: 1, max: 2000 })).map(([s, n]) => s.repeat(n)),
);
const leaf = plain.map(escapeHtml);
const href = fc.webUrl({ withQueryParameters: true }).map((url) => escapeHtml(url).replace(/"/g, '&quot;'));

const { html } = fc.letrec<{ html: string; element: string }>((tie) => ({
  html: fc.array(fc.oneof({ depthSize: 'small' }, leaf, tie('element')), { maxLength: 8 }).map((parts) => parts.join('')),
  element: fc.tuple(fc.constantFrom(...TAGS), href, tie('html')).map(([tag, url, inner]) =>
    tag === 'a' ? `<a href="${url}">${inner}</a>` : `<${tag}>${inner}</${tag}>`),
}));

describe('text bounds', () => {
  describe('fitHtml', () => {
    it('returns the text unchanged when its visible length is within the limit', () => {
      const text = `<b>Buy</b> ${escapeHtml('<BTC> & co')} <a href="https://x.test/?a=1&amp;b=2">link</a>`;
      expect(fitHtml(text)).to.equal(text);
      expect(fitHtml('&amp;'.repeat(10), 10)).to.equal('&amp;'.repeat(10));
    });

    it('cuts a 60,000-character escaped user text in <b> to 4096 characters, well-formed, when it is far too long', () => {
      const user = '<script> & "quotes" 😀 '.repeat(2_700);
      const input = `<b>${escapeHtml(user)}</b>`;
      expect(visibleText(input).length).to.be.at.least(60_000);
      const out = fitHtml(input);
      expect(out.length).to.be.at.most(TELEGRAM_TEXT_LIMIT);
      expect(out.length).to.be.above(TELEGRAM_TEXT_LIMIT - 410);
      expect(htmlProblems(out)).to.deep.equal([]);
      expect(out).to.match(/^<b>.*…<\/b>$/s);
      expect(user.startsWith(visibleText(out).slice(0, -1))).to.equal(true);
    });

    it('closes nested tags innermost first when the cut falls inside them', () => {
      const out = fitHtml(`<i>intro <b>bold <a href="https://x.test">${'y'.repeat(100)}</a></b></i>`, 60);
      expect(out).to.match(/…<\/a><\/b><\/i>$/);
      expect(out.length).to.be.at.most(60);
      expect(htmlProblems(out)).to.deep.equal([]);
    });

    it('cuts at the last space or line break when one is within the last tenth', () => {
      const out = fitHtml(`${'word '.repeat(30)}\n${'z'.repeat(200)}`, 100);
      expect(out).to.equal(`${'word '.repeat(19).trimEnd()}…`);
      const noBlank = fitHtml('x'.repeat(200), 100);
      expect(noBlank).to.equal(`${'x'.repeat(99)}…`);
    });

    it('does not leave an empty element when the cut falls right after an opening tag', () => {
      const out = fitHtml(`${'a'.repeat(50)}<code>${'b'.repeat(100)}</code>`, 60);
      expect(out.length).to.be.at.most(60);
      expect(out).to.not.include('<code></code>');
      expect(htmlProblems(out)).to.deep.equal([]);
    });

    it('never splits a surrogate pair or an entity when the cut lands on one', () => {
      for (let limit = 2; limit < 30; limit++) {
        for (const text of ['😀'.repeat(40), `a${'😀'.repeat(40)}`, '&amp;&lt;'.repeat(40), `<b>${'&quot;😀'.repeat(20)}</b>`]) {
          const out = fitHtml(text, limit);
          expect(out.length, `${text.slice(0, 12)} / ${limit}`).to.be.at.most(limit);
          expect(htmlProblems(out), `${text.slice(0, 12)} / ${limit}`).to.deep.equal([]);
        }
      }
    });

    it('returns only the ellipsis when not even the first character fits with its tags', () => {
      expect(fitHtml('<b>abc</b>', 2)).to.equal('…');
    });

    it('refuses a limit that is not a positive integer', () => {
      expect(() => fitHtml('x', 0)).to.throw(RangeError, 'got 0');
      expect(() => fitHtml('x', 1.5)).to.throw(RangeError, 'got 1.5');
    });

    it('keeps any of our texts within a random limit, well-formed, as a prefix with an ellipsis, when cut', () => {
      fc.assert(fc.property(html, fc.integer({ min: 20, max: 5_000 }), (input, limit) => {
        const out = fitHtml(input, limit);
        const shown = visibleText(input);
        if (shown.length <= limit) {
          expect(out).to.equal(input);
          return;
        }
        expect(out.length).to.be.at.most(limit);
        expect(htmlProblems(out)).to.deep.equal([]);
        const cut = visibleText(out);
        expect(cut.endsWith('…')).to.equal(true);
        expect(shown.startsWith(cut.slice(0, -1))).to.equal(true);
      }), { numRuns: 300 });
    });
  });

  describe('fitPlain', () => {
    it('returns the text unchanged when it fits', () => {
      expect(fitPlain('Approved 😀')).to.equal('Approved 😀');
      expect(fitPlain('x'.repeat(CALLBACK_ANSWER_LIMIT))).to.equal('x'.repeat(CALLBACK_ANSWER_LIMIT));
    });

    it('drops the whole surrogate pair when the cut falls between its halves', () => {
      const out = fitPlain(`${'a'.repeat(198)}😀 and more`);
      expect(out).to.equal(`${'a'.repeat(198)}…`);
      expect(fitPlain(`${'a'.repeat(197)}😀 and more`)).to.equal(`${'a'.repeat(197)}😀…`);
    });

    it('keeps any text within the limit as a prefix with an ellipsis, when cut', () => {
      fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 400 }), fc.integer({ min: 1, max: 300 }), (text, limit) => {
        const out = fitPlain(text, limit);
        if (text.length <= limit) {
          expect(out).to.equal(text);
          return;
        }
        expect(out.length).to.be.at.most(limit);
        expect(LONE_SURROGATE.test(out)).to.equal(false);
        expect(out.endsWith('…')).to.equal(true);
        expect(text.startsWith(out.slice(0, -1))).to.equal(true);
      }), { numRuns: 300 });
    });
  });
});
