import { expect } from 'chai';
import { deciderOf, describeDecider, labelProblem, normaliseIdentity, parseOperatorTokens, principalOfToken } from '../src/identity';
import { countsAsNewApproval } from '../src/approval/policy';

const T_ALICE = 'alice-token-0123456789abcdef';
const T_BOB = 'bob-token-0123456789abcdef00';
const T_API = 'shared-api-token-0123456789ab';

describe('identity: principals', () => {
  it('normalises identities (NFKC, trimmed, lower case), so look-alike spellings are one principal', () => {
    expect(normaliseIdentity(' ALICE ')).to.equal('alice');
    expect(normaliseIdentity('ａｌｉｃｅ')).to.equal('alice'); // full-width
    expect(countsAsNewApproval([{ by: 'alice', at: 0, sizeFactor: 1 }], 'ALICE')).to.equal(false);
    expect(countsAsNewApproval([{ by: 'api', at: 0, sizeFactor: 1, label: 'alice' }], 'api')).to.equal(false);
    expect(countsAsNewApproval([{ by: 'alice', at: 0, sizeFactor: 1 }], 'bob')).to.equal(true);
  });

  it('refuses names and labels that are empty, longer than 64 characters, or hold control or invisible characters', () => {
    expect(labelProblem('alice')).to.equal(null);
    expect(labelProblem('Alice Kim')).to.equal(null);
    expect(labelProblem('a'.repeat(64))).to.equal(null);
    expect(labelProblem('a'.repeat(65))).to.contain('at most 64');
    expect(labelProblem('   ')).to.contain('empty');
    for (const sneaky of ['alice\u200b', 'ali\u200dce', 'alice\u0000', 'ali\nce', '\u202ealice', 'alice\u3164', 'a\u2060lice', 'ali\u2028ce', 'ali\ufeffce', 'tg:\u200b1001']) {
      expect(labelProblem(sneaky), JSON.stringify(sneaky)).to.contain('invisible');
    }
  });

  it('parses OPERATOR_TOKENS, refusing short or repeated tokens, repeated names and the reserved api and tg: names, without quoting a token', () => {
    const ok = parseOperatorTokens(`alice:${T_ALICE}, Bob:${T_BOB}`, 24);
    expect(ok.problems).to.deep.equal([]);
    expect(ok.tokens).to.deep.equal([{ name: 'alice', token: T_ALICE }, { name: 'bob', token: T_BOB }]);
    expect(parseOperatorTokens('', 24).tokens).to.deep.equal([]);
    const bad = parseOperatorTokens(`alice:short,ALICE:${T_BOB},api:${T_API}x,tg:1:${T_ALICE}y,nocolon,bob:${T_BOB}`, 24);
    const text = bad.problems.join(' | ');
    expect(text).to.contain('at least 24 characters').and.contain('given twice').and.contain('reserved').and.contain('name:token').and.contain('same as another');
    for (const secret of ['short', T_BOB, T_ALICE]) expect(text).not.to.contain(secret);
  });

  it('finds the principal of a bearer token: api for the shared one, the name for an operator\'s, null for anything else', () => {
    const ops = parseOperatorTokens(`alice:${T_ALICE},bob:${T_BOB}`, 24).tokens;
    expect(principalOfToken(T_API, T_API, ops)).to.equal('api');
    expect(principalOfToken(T_ALICE, T_API, ops)).to.equal('alice');
    expect(principalOfToken(T_BOB, T_API, ops)).to.equal('bob');
    expect(principalOfToken(`${T_BOB}x`, T_API, ops)).to.equal(null);
    expect(principalOfToken('', '', [])).to.equal(null);
  });

  it('takes a named token\'s principal from the token: a matching by is fine, another name is identity_mismatch; the shared token\'s by is a label', () => {
    expect(deciderOf('alice', undefined)).to.deep.equal({ ok: true, decider: { principal: 'alice' } });
    expect(deciderOf('alice', 'ALICE')).to.deep.equal({ ok: true, decider: { principal: 'alice' } });
    const mismatch = deciderOf('alice', 'bob');
    expect(mismatch.ok).to.equal(false);
    expect(!mismatch.ok && mismatch.problem).to.deep.include({ status: 403, code: 'identity_mismatch' });
    expect(deciderOf('api', 'alice')).to.deep.equal({ ok: true, decider: { principal: 'api', label: 'alice' } });
    expect(deciderOf('api', undefined)).to.deep.equal({ ok: true, decider: { principal: 'api' } });
    for (const by of ['tg:1001', 'TG:1001', 'ｔｇ:1001', 'alice\u200b', 'x'.repeat(65)]) {
      const r = deciderOf('api', by);
      expect(r.ok, by).to.equal(false);
      expect(!r.ok && r.problem.status, by).to.equal(400);
    }
    expect(describeDecider({ principal: 'api', label: 'alice' })).to.equal('api (alice)');
    expect(describeDecider({ principal: 'tg:1001' })).to.equal('tg:1001');
  });
});
