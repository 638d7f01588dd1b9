import { expect } from 'chai';
import { isSessionOpen, parseMarketSession, type MarketSession } from '../src/market-session';

/** Epoch ms of a Seoul wall-clock time (UTC+9, no daylight saving). */
const seoul = (iso: string) => Date.parse(`${iso}+09:00`);

describe('market session (KIS_MARKET_HOURS)', () => {
  const krx = parseMarketSession('09:00-15:30', 'Asia/Seoul') as MarketSession;

  it('is open on a weekday from the opening minute up to, not including, the close', () => {
    // 2026-12-02 is a Wednesday.
    expect(isSessionOpen(krx, seoul('2026-12-02T08:59:59'))).to.equal(false);
    expect(isSessionOpen(krx, seoul('2026-12-02T09:00:00'))).to.equal(true);
    expect(isSessionOpen(krx, seoul('2026-12-02T15:29:59'))).to.equal(true);
    expect(isSessionOpen(krx, seoul('2026-12-02T15:30:00'))).to.equal(false);
  });

  it('is closed at the weekend unless the days say otherwise', () => {
    expect(isSessionOpen(krx, seoul('2026-12-05T10:00:00'))).to.equal(false);
    const always = parseMarketSession('Mon-Sun 00:00-24:00', 'Asia/Seoul') as MarketSession;
    expect(isSessionOpen(always, seoul('2026-12-05T10:00:00'))).to.equal(true);
    expect(isSessionOpen(always, seoul('2026-12-06T23:59:59'))).to.equal(true);
    expect(always.text).to.equal('Mon-Sun 00:00-24:00 Asia/Seoul');
  });

  it('reads the day in the market\'s zone, not the machine\'s: Monday 08:00 in Seoul is Sunday in UTC', () => {
    const mondays = parseMarketSession('Mon 00:00-24:00', 'Asia/Seoul') as MarketSession;
    expect(isSessionOpen(mondays, seoul('2026-12-07T08:00:00'))).to.equal(true);
    expect(isSessionOpen(mondays, seoul('2026-12-06T23:00:00'))).to.equal(false);
  });

  it('says what is wrong with a text that is not a session', () => {
    for (const bad of ['', '9:00-15:30', '09:00-25:00', '15:30-09:00', 'Fri-Mon 09:00-15:30', 'Mon-Fri09:00-15:30', '24:00-24:00']) {
      expect(parseMarketSession(bad, 'Asia/Seoul'), bad).to.be.a('string');
    }
  });
});
