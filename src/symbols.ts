/**
 * Symbol normalisation: every form a signal may use (`KRW-BTC`, `BTC/KRW`, `BTCKRW`,
 * `UPBIT:BTCKRW`, `btc_krw`) becomes canonical `BASE/QUOTE`. KRX stocks arrive as six-character
 * codes (`005930`, `KRX:005930`) and become `005930/KRW`.
 */

/**
 * A KRX stock code: four digits, then two digits or letters (`005930`; newer codes such as
 * `0001A0`; preferred shares such as `00088K`).
 */
const KRX_CODE = /^\d{4}[0-9A-Z]{2}$/;

/** Whether a canonical symbol is a KRX stock (`005930/KRW`), traded through KIS. */
export function isKrxSymbol(symbol: string): boolean {
  const [base, quote] = symbol.split('/');
  return quote === 'KRW' && base !== undefined && KRX_CODE.test(base);
}

/** The KRX code (`005930`) of a canonical KRX symbol. */
export function krxCode(symbol: string): string {
  return symbol.split('/')[0]!;
}

/** Quote currencies recognised in concatenated forms such as `BTCKRW`, longest first. */
const KNOWN_QUOTES = ['USDT', 'USDC', 'BUSD', 'FDUSD', 'KRW', 'USD', 'EUR', 'JPY', 'BTC', 'ETH'];
const ASSET = /^[A-Z0-9]{1,15}$/;

/** How likely an asset is to be the quote of a pair: fiat and stablecoins, then BTC, then ETH. */
function quoteRank(asset: string): number {
  if (['KRW', 'USD', 'EUR', 'JPY', 'USDT', 'USDC', 'BUSD', 'FDUSD'].includes(asset)) return 3;
  if (asset === 'BTC') return 2;
  if (asset === 'ETH') return 1;
  return 0;
}

/** Canonical `BASE/QUOTE`, or undefined with no guessing when the form is not recognised. */
export function normaliseSymbol(raw: string): string | undefined {
  let s = raw.trim().toUpperCase();
  if (s === '') return undefined;
  const colon = s.indexOf(':');
  let prefix = '';
  if (colon >= 0) {
    prefix = s.slice(0, colon);
    if (!/^[A-Z0-9_]{1,20}$/.test(prefix)) return undefined;
    s = s.slice(colon + 1);
  }
  // A KRX code stands alone (`005930`, `KRX:005930`); under another exchange's prefix it is not one.
  if (KRX_CODE.test(s) && (prefix === '' || ['KRX', 'KOSPI', 'KOSDAQ'].includes(prefix))) return `${s}/KRW`;
  s = s.replace(/\.P$/, '');
  let base: string | undefined;
  let quote: string | undefined;
  const slash = /^([A-Z0-9]+)\/([A-Z0-9]+)$/.exec(s);
  const dash = /^([A-Z0-9]+)-([A-Z0-9]+)$/.exec(s);
  const underscore = /^([A-Z0-9]+)_([A-Z0-9]+)$/.exec(s);
  if (slash) [base, quote] = [slash[1], slash[2]];
  else if (underscore) [base, quote] = [underscore[1], underscore[2]];
  else if (dash) {
    // Upbit writes QUOTE-BASE (KRW-BTC, BTC-ETH); others BASE-QUOTE (ETH-BTC). The side that is
    // more quote-like is the quote; a tie follows Upbit.
    const [l, r] = [dash[1]!, dash[2]!];
    if (quoteRank(l) >= quoteRank(r)) [base, quote] = [r, l];
    else [base, quote] = [l, r];
  } else if (/^[A-Z0-9]+$/.test(s)) {
    const q = KNOWN_QUOTES.find((k) => s.endsWith(k) && s.length > k.length);
    if (!q) return undefined;
    [base, quote] = [s.slice(0, s.length - q.length), q];
  }
  if (!base || !quote || !ASSET.test(base) || !ASSET.test(quote) || base === quote) return undefined;
  return `${base}/${quote}`;
}

/** Upbit's market code (`KRW-BTC`) for a canonical symbol. */
export function toUpbitMarket(symbol: string): string {
  const [base, quote] = symbol.split('/');
  return `${quote}-${base}`;
}
