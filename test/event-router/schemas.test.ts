import { expect } from 'chai';
import { approveBody, armBody, parseSignal, parseWith, rejectBody, type FieldIssue } from '../../src/event-router/schemas';
import type { ParsedSignal } from '../../src/proposal/types';
import { deciderOf } from '../../src/identity';

const good = { symbol: 'KRW-BTC', action: 'buy' };

/** The issues of a parse that must fail. */
function issuesOf(r: { ok: true } | { ok: false; issues: FieldIssue[] }): FieldIssue[] {
  expect(r.ok, 'parse should fail').to.equal(false);
  return (r as { issues: FieldIssue[] }).issues;
}

function paths(issues: FieldIssue[]): string[] {
  return issues.map((i) => i.path);
}

describe('parseSignal', () => {
  it('normalises the symbol and the action when given a minimal signal', () => {
    const r = parseSignal({ symbol: 'KRW-BTC', action: 'BUY' });
    expect(r).to.deep.equal({ ok: true, value: { symbol: 'BTC/KRW', action: 'buy' } });
  });

  it('keeps every optional field when all are given', () => {
    const r = parseSignal({
      symbol: 'UPBIT:ETHKRW', action: ' Exit ', price: 5_000_000, confidence: 0.8, size: 50_000,
      strategy: 'ema-cross', timeframe: '15', time: '2026-11-26T00:00:00Z', id: 'alert-1',
    });
    expect(r).to.deep.equal({
      ok: true,
      value: {
        symbol: 'ETH/KRW', action: 'exit', price: 5_000_000, confidence: 0.8, size: 50_000,
        strategy: 'ema-cross', timeframe: '15', time: '2026-11-26T00:00:00Z', externalId: 'alert-1',
      },
    });
  });

  it('reads numbers from strings when TradingView sends placeholders as text', () => {
    const r = parseSignal({ ticker: 'BTCKRW', action: 'sell', price: ' 100000000 ', confidence: '0.9', size: '1e5', timeframe: 60, id: 42 });
    expect(r.ok).to.equal(true);
    const v = (r as { ok: true; value: ParsedSignal }).value;
    expect(v).to.include({ symbol: 'BTC/KRW', action: 'sell', price: 100_000_000, confidence: 0.9, size: 100_000, timeframe: '60', externalId: '42' });
  });

  it('accepts confidence 0 and 1 when they are the bounds', () => {
    expect(parseSignal({ ...good, confidence: 0 }).ok).to.equal(true);
    expect(parseSignal({ ...good, confidence: 1 }).ok).to.equal(true);
    expect(parseSignal({ ...good, confidence: '1' }).ok).to.equal(true);
  });

  it('prefers symbol over ticker when both are given', () => {
    const r = parseSignal({ symbol: 'KRW-ETH', ticker: 'BTCKRW', action: 'buy' });
    expect((r as { value: { symbol: string } }).value.symbol).to.equal('ETH/KRW');
  });

  for (const body of [null, undefined, 'buy KRW-BTC', 42, true, [good], []]) {
    it(`fails with an issue on the body when the body is ${JSON.stringify(body) ?? 'undefined'}`, () => {
      const issues = issuesOf(parseSignal(body));
      expect(issues).to.have.length(1);
      expect(issues[0]!.path).to.equal('');
      expect(issues[0]!.message).to.match(/object/);
    });
  }

  const bad: Array<[string, Record<string, unknown>, string]> = [
    ['the symbol is missing', { action: 'buy' }, 'symbol'],
    ['the action is missing', { symbol: 'KRW-BTC' }, 'action'],
    ['the action is unknown', { ...good, action: 'hold' }, 'action'],
    ['the action is a number', { ...good, action: 1 }, 'action'],
    ['the symbol is a number', { ...good, symbol: 5 }, 'symbol'],
    ['the ticker is an object', { action: 'buy', ticker: { s: 'BTCKRW' } }, 'ticker'],
    ['the symbol is empty', { ...good, symbol: '' }, 'symbol'],
    ['the symbol is "BTC"', { ...good, symbol: 'BTC' }, 'symbol'],
    ['the symbol is "B@D"', { ...good, symbol: 'B@D' }, 'symbol'],
    ['the ticker is unrecognised', { action: 'buy', ticker: 'NOPE' }, 'ticker'],
    ['the price is an object', { ...good, price: { value: 1 } }, 'price'],
    ['the price is an array', { ...good, price: [1] }, 'price'],
    ['the price is a boolean', { ...good, price: true }, 'price'],
    ['the price is negative', { ...good, price: -1 }, 'price'],
    ['the price is zero', { ...good, price: 0 }, 'price'],
    ['the price is "NaN"', { ...good, price: 'NaN' }, 'price'],
    ['the price is "Infinity"', { ...good, price: 'Infinity' }, 'price'],
    ['the price is an empty string', { ...good, price: '  ' }, 'price'],
    ['the price is "12abc"', { ...good, price: '12abc' }, 'price'],
    ['the size is negative', { ...good, size: -50_000 }, 'size'],
    ['the size is "-1"', { ...good, size: '-1' }, 'size'],
    ['the size is "Infinity"', { ...good, size: 'Infinity' }, 'size'],
    ['the size is "-Infinity"', { ...good, size: '-Infinity' }, 'size'],
    // Defect: a signal priced 5e-324 was settled with an infinite quantity and poisoned the book.
    ['the price is 5e-324', { ...good, price: 5e-324 }, 'price'],
    ['the price is "5e-324"', { ...good, price: '5e-324' }, 'price'],
    ['the price is below 1e-8', { ...good, price: 9e-9 }, 'price'],
    ['the price is above 1e15', { ...good, price: 1.1e15 }, 'price'],
    ['the size is below 1e-8', { ...good, size: 1e-9 }, 'size'],
    ['the size is above 1e15', { ...good, size: 2e15 }, 'size'],
    ['the confidence is "abc"', { ...good, confidence: 'abc' }, 'confidence'],
    ['the confidence is 1.5', { ...good, confidence: 1.5 }, 'confidence'],
    ['the confidence is negative', { ...good, confidence: -0.1 }, 'confidence'],
    ['the confidence is "NaN"', { ...good, confidence: 'NaN' }, 'confidence'],
    ['the strategy is too long', { ...good, strategy: 'x'.repeat(101) }, 'strategy'],
    ['the timeframe is too long', { ...good, timeframe: 'x'.repeat(21) }, 'timeframe'],
    ['the id is too long', { ...good, id: 'x'.repeat(129) }, 'id'],
    ['the id is empty', { ...good, id: '   ' }, 'id'],
    ['the id is an object', { ...good, id: { a: 1 } }, 'id'],
  ];
  for (const [when, body, field] of bad) {
    it(`fails with an issue on ${field} when ${when}`, () => {
      const issues = issuesOf(parseSignal(body));
      expect(paths(issues)).to.include(field);
      for (const i of issues) expect(i.message).to.be.a('string').and.not.equal('');
    });
  }

  // BUG (product): `numeric` in schemas.ts converts strings with Number(), which also reads
  // hexadecimal, binary and octal literals: a price of "0x10" becomes 16 instead of an issue.
  it('fails with an issue on price when the price is a hexadecimal, binary or octal literal', () => {
    for (const price of ['0x10', '0b101', '0o17']) {
      expect(paths(issuesOf(parseSignal({ ...good, price }))), price).to.include('price');
    }
  });

  it('names every bad field when several are bad', () => {
    const issues = issuesOf(parseSignal({ price: -1, confidence: 2, size: 'abc' }));
    expect(paths(issues)).to.include.members(['symbol', 'action', 'price', 'confidence', 'size']);
  });

  it('quotes the value it received when the symbol is not recognised', () => {
    const issues = issuesOf(parseSignal({ ...good, symbol: 'B@D' }));
    expect(issues.find((i) => i.path === 'symbol')!.message).to.include('B@D');
  });

  it('quotes the value it received when a number is not finite', () => {
    const issues = issuesOf(parseSignal({ ...good, price: 'NaN' }));
    expect(issues.find((i) => i.path === 'price')!.message).to.include('NaN');
  });
});

describe('parseWith', () => {
  it('returns the approver as given (the edge checks it against the token\'s principal) and accepts none', () => {
    expect(parseWith(approveBody, { by: '  alice ' })).to.deep.equal({ ok: true, value: { by: '  alice ' } });
    expect(parseWith(approveBody, {})).to.deep.equal({ ok: true, value: {} });
  });

  it('accepts sizeFactor when 0 < f <= 1', () => {
    expect(parseWith(approveBody, { by: 'alice', sizeFactor: 0.5 })).to.deep.equal({ ok: true, value: { by: 'alice', sizeFactor: 0.5 } });
    expect(parseWith(approveBody, { by: 'alice', sizeFactor: 1 }).ok).to.equal(true);
    expect(parseWith(approveBody, { by: 'alice', sizeFactor: 0.0001 }).ok).to.equal(true);
  });

  for (const sizeFactor of [0, -0.5, 1.5, 1.0000001, 'x', '0.5', null, Number.NaN, Number.POSITIVE_INFINITY]) {
    it(`fails with an issue on sizeFactor when sizeFactor is ${String(sizeFactor)}`, () => {
      const issues = issuesOf(parseWith(approveBody, { by: 'alice', sizeFactor }));
      expect(paths(issues)).to.deep.equal(['sizeFactor']);
    });
  }

  for (const by of [7, null, ['alice'], { name: 'alice' }]) {
    it(`fails with an issue on by when by is ${JSON.stringify(by)} (not a string)`, () => {
      expect(paths(issuesOf(parseWith(approveBody, { by })))).to.deep.equal(['by']);
      expect(paths(issuesOf(parseWith(rejectBody, { by })))).to.deep.equal(['by']);
    });
  }

  for (const by of ['', '   ', 'x'.repeat(65), 'tg:1001', 'alice\u200b']) {
    it(`refuses by ${JSON.stringify(by)} for the shared token and for a named one (400 on by)`, () => {
      for (const principal of ['api', 'alice']) {
        const r = deciderOf(principal, by, true);
        expect(r.ok).to.equal(false);
        expect(!r.ok && r.problem).to.deep.include({ status: 400, field: 'by' });
      }
    });
  }

  for (const body of [null, 'alice', ['alice'], 3]) {
    it(`fails with an issue on the body when the body is ${JSON.stringify(body)}`, () => {
      expect(issuesOf(parseWith(approveBody, body))).to.deep.equal([{ path: '', message: 'the body must be a JSON object' }]);
    });
  }

  it('keeps the reason when given a rejection with one', () => {
    expect(parseWith(rejectBody, { by: 'bob', reason: ' too risky ' })).to.deep.equal({ ok: true, value: { by: 'bob', reason: 'too risky' } });
  });

  it('fails with an issue on reason when the reason is too long or not text', () => {
    expect(paths(issuesOf(parseWith(rejectBody, { by: 'bob', reason: 'x'.repeat(501) })))).to.deep.equal(['reason']);
    expect(paths(issuesOf(parseWith(rejectBody, { by: 'bob', reason: 5 })))).to.deep.equal(['reason']);
  });

  it('accepts arming when minutes is a whole number from 1 to 1440', () => {
    expect(parseWith(armBody, { by: 'ops', minutes: 30 })).to.deep.equal({ ok: true, value: { by: 'ops', minutes: 30 } });
    expect(parseWith(armBody, { by: 'ops', minutes: 1 }).ok).to.equal(true);
    expect(parseWith(armBody, { by: 'ops', minutes: 1440 }).ok).to.equal(true);
  });

  for (const minutes of [0, 1.5, 1441, '30', undefined]) {
    it(`fails with an issue on minutes when minutes is ${JSON.stringify(minutes) ?? 'missing'}`, () => {
      expect(paths(issuesOf(parseWith(armBody, { by: 'ops', minutes })))).to.deep.equal(['minutes']);
    });
  }
});

describe('parseSignal with a quote currency', () => {
  it('refuses a symbol quoted in another currency, naming the field and both currencies', () => {
    const r = parseSignal({ symbol: 'BINANCE:BTCUSDT', action: 'buy' }, { quoteCurrency: 'KRW' });
    expect(r.ok).to.equal(false);
    const issue = (r as { issues: Array<{ path: string; message: string }> }).issues[0]!;
    expect(issue.path).to.equal('symbol');
    expect(issue.message).to.include('USDT').and.include('KRW');
  });

  it('accepts the same symbol forms quoted in the account currency', () => {
    for (const symbol of ['KRW-BTC', 'BTC/KRW', 'BTCKRW', 'UPBIT:BTCKRW']) {
      expect(parseSignal({ symbol, action: 'buy' }, { quoteCurrency: 'KRW' }).ok, symbol).to.equal(true);
    }
  });
});

describe('approver names over the API', () => {
  it('refuses a "tg:" name, which belongs to Telegram users checked against the allow list, and requires a label with the shared token', () => {
    expect(deciderOf('api', 'tg:1001', true).ok).to.equal(false);
    expect(deciderOf('api', undefined, true).ok).to.equal(false);
    expect(deciderOf('api', 'alice', true)).to.deep.equal({ ok: true, decider: { principal: 'api', label: 'alice' } });
    expect(deciderOf('alice', undefined, true)).to.deep.equal({ ok: true, decider: { principal: 'alice' } });
  });
});
