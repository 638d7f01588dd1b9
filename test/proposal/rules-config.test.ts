import { expect } from 'chai';
import { ConfigError } from '../../src/errors';
import { defaultRules, loadRules } from '../../src/proposal/rules-config';

function loadError(text: string, file = '/data/rules.json'): ConfigError {
  try {
    loadRules(text, { file });
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected loadRules to throw');
}

describe('loadRules', () => {
  it('returns the built-in defaults when there is no file', () => {
    expect(loadRules(undefined)).to.deep.equal({
      confirmations: {
        trend: { enabled: true, period: 20 },
        rsi: { enabled: true, period: 14, buyBand: { min: 30, max: 70 }, sellBand: { min: 30, max: 100 } },
        volume: { enabled: true, period: 20, factor: 1 },
      },
      sizing: { mode: 'fixed_pct', defaultPositionPct: 5, atrPeriod: 14, riskPctPerAtr: 1, minNotional: 0, maxNotional: null },
      maxDataAgeSeconds: 120,
      allowAddToPosition: false,
    });
  });

  it('takes DEFAULT_POSITION_PCT and MARKET_DATA_MAX_AGE_SECONDS as defaults when given', () => {
    const r = loadRules(undefined, { defaults: { defaultPositionPct: 2.5, maxDataAgeSeconds: 30 } });
    expect(r.sizing.defaultPositionPct).to.equal(2.5);
    expect(r.maxDataAgeSeconds).to.equal(30);
  });

  it('lets the file win over the variables when both set a value', () => {
    const r = loadRules('{"sizing":{"defaultPositionPct":7},"maxDataAgeSeconds":60}', { defaults: { defaultPositionPct: 2.5, maxDataAgeSeconds: 30 } });
    expect(r.sizing.defaultPositionPct).to.equal(7);
    expect(r.maxDataAgeSeconds).to.equal(60);
  });

  it('fills in every key the file leaves out when it sets only a few', () => {
    const r = loadRules('{"confirmations":{"rsi":{"buyBand":{"max":65}}},"minConfidence":0.5}');
    expect(r.confirmations.rsi).to.deep.equal({ enabled: true, period: 14, buyBand: { min: 30, max: 65 }, sellBand: { min: 30, max: 100 } });
    expect(r.confirmations.trend.enabled).to.equal(true);
    expect(r.minConfidence).to.equal(0.5);
  });

  it('returns frozen rules', () => {
    const r = defaultRules();
    expect(Object.isFrozen(r)).to.equal(true);
    expect(Object.isFrozen(r.confirmations.rsi.buyBand)).to.equal(true);
  });

  it('throws a ConfigError naming RULES_FILE, the file and the key path when a value is wrong', () => {
    const err = loadError('{"confirmations":{"rsi":{"period":0}}}');
    expect(err.message).to.equal('RULES_FILE /data/rules.json is invalid:\n  confirmations.rsi.period must be at least 1');
    expect(err.issues).to.deep.equal([{ variable: 'RULES_FILE', message: '/data/rules.json: confirmations.rsi.period must be at least 1' }]);
  });

  it('names the full path of an unknown key', () => {
    const err = loadError('{"confirmations":{"volume":{"factr":2}},"colour":"red"}');
    expect(err.issues.map((i) => i.message)).to.deep.equal([
      '/data/rules.json: confirmations.volume.factr is not a known key',
      '/data/rules.json: colour is not a known key',
    ]);
  });

  it('rejects an unknown sizing mode', () => {
    const err = loadError('{"sizing":{"mode":"kelly"}}');
    expect(err.message).to.contain('sizing.mode');
  });

  it('rejects a band whose min is above its max', () => {
    const err = loadError('{"confirmations":{"rsi":{"sellBand":{"min":80,"max":20}}}}');
    expect(err.message).to.contain('confirmations.rsi.sellBand.min must not be above max');
  });

  it('rejects a minNotional above maxNotional', () => {
    const err = loadError('{"sizing":{"minNotional":10,"maxNotional":5}}');
    expect(err.message).to.contain('sizing.minNotional must not be above maxNotional');
  });

  it('rejects a minConfidence outside 0..1', () => {
    expect(loadError('{"minConfidence":1.5}').message).to.contain('minConfidence must be at most 1');
  });

  it('rejects a wrong type with the key path', () => {
    expect(loadError('{"allowAddToPosition":"yes"}').message).to.contain('allowAddToPosition ');
  });

  it('rejects text that is not JSON, naming the file', () => {
    const err = loadError('{ confirmations: }');
    expect(err.message).to.match(/^RULES_FILE \/data\/rules.json is invalid:\n {2}\(file\) is not valid JSON/);
  });

  it('rejects a file whose top level is not an object', () => {
    expect(loadError('[1, 2]').message).to.contain('(root)');
  });
});
