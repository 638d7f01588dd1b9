import { expect } from 'chai';
import { StrangerLimiter } from '../../src/telegram/strangers';

describe('StrangerLimiter', () => {
  it('admits a key once an hour', () => {
    let now = 0;
    const limiter = new StrangerLimiter(() => now);
    expect(limiter.admit('reply:1')).to.equal(true);
    expect(limiter.admit('reply:1')).to.equal(false);
    expect(limiter.admit('reply:2')).to.equal(true);
    now = 3_599_999;
    expect(limiter.admit('reply:1')).to.equal(false);
    now = 3_600_000;
    expect(limiter.admit('reply:1')).to.equal(true);
    expect(limiter.admit('reply:1')).to.equal(false);
  });

  it('stays silent for new keys while the table is full of keys seen within the hour, and frees room as they expire', () => {
    let now = 0;
    const limiter = new StrangerLimiter(() => now, 1000, 3);
    for (const k of ['a', 'b', 'c']) expect(limiter.admit(k)).to.equal(true);
    expect(limiter.admit('d'), 'the table is full').to.equal(false);
    now = 500;
    expect(limiter.admit('d')).to.equal(false);
    now = 1000;
    // a, b and c expired together: room for three new keys.
    expect(limiter.admit('d')).to.equal(true);
    expect(limiter.admit('a')).to.equal(true);
  });

  it('keeps expiry in time order when a key is admitted again (the front is always the oldest)', () => {
    let now = 0;
    const limiter = new StrangerLimiter(() => now, 1000, 2);
    expect(limiter.admit('a')).to.equal(true);
    now = 600;
    expect(limiter.admit('b')).to.equal(true);
    now = 1000;
    expect(limiter.admit('a'), 'a expired and is admitted again, now the newest').to.equal(true);
    now = 1600;
    // b (600) expired, a (1000) has not: one free place.
    expect(limiter.admit('c')).to.equal(true);
    expect(limiter.admit('a')).to.equal(false);
  });
});
