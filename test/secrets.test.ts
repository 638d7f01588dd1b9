import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { loadConfig, MIN_SECRET_LENGTH } from '../src/config';
import { InvariantError } from '../src/errors';
import { firstStartText, loadOrCreateSecrets, markSecretsShown } from '../src/secrets';

describe('loadOrCreateSecrets', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'secrets-'));
    file = path.join(dir, 'secrets.json');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const onDisk = () => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;

  it('generates secrets that loadConfig accepts when DATA_DIR has none', () => {
    const { secrets, created } = loadOrCreateSecrets(dir);
    expect(created).to.deep.equal(['WEBHOOK_SECRET', 'API_TOKEN']);
    for (const value of [secrets.API_TOKEN, secrets.WEBHOOK_SECRET]) {
      expect(value.length).to.be.at.least(MIN_SECRET_LENGTH);
      expect(value).to.match(/^[A-Za-z0-9_-]+$/);
    }
    expect(secrets.API_TOKEN).not.to.equal(secrets.WEBHOOK_SECRET);
    const c = loadConfig({ API_TOKEN: secrets.API_TOKEN, WEBHOOK_SECRET: secrets.WEBHOOK_SECRET });
    expect(c.api.token).to.equal(secrets.API_TOKEN);
  });

  it('stores new secrets owner-only and as not yet shown when it generates them', () => {
    const { secrets, shown } = loadOrCreateSecrets(dir);
    expect(shown).to.deep.equal({ WEBHOOK_SECRET: false, API_TOKEN: false });
    expect(onDisk()).to.deep.equal({ ...secrets, shown: { WEBHOOK_SECRET: false, API_TOKEN: false } });
    expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
  });

  it('returns the same secrets, still not shown, when nothing marked them shown', () => {
    const first = loadOrCreateSecrets(dir);
    const again = loadOrCreateSecrets(dir);
    expect(again.secrets).to.deep.equal(first.secrets);
    expect(again.created).to.deep.equal([]);
    expect(again.shown).to.deep.equal({ WEBHOOK_SECRET: false, API_TOKEN: false });
  });

  it('records only the names it is told were shown when it marks them', () => {
    const { secrets } = loadOrCreateSecrets(dir);
    markSecretsShown(dir, { API_TOKEN: secrets.API_TOKEN });
    expect(onDisk()['shown']).to.deep.equal({ WEBHOOK_SECRET: false, API_TOKEN: true });
    const again = loadOrCreateSecrets(dir);
    expect(again.secrets).to.deep.equal(secrets);
    expect(again.shown).to.deep.equal({ WEBHOOK_SECRET: false, API_TOKEN: true });
  });

  it('leaves a secret unshown when the value shown is no longer the stored one', () => {
    loadOrCreateSecrets(dir);
    markSecretsShown(dir, { API_TOKEN: 'a-value-that-was-replaced-meanwhile' });
    expect(loadOrCreateSecrets(dir).shown.API_TOKEN).to.equal(false);
  });

  it('counts secrets as shown when the file comes from a version that did not record it', () => {
    const old = { WEBHOOK_SECRET: 'w'.repeat(32), API_TOKEN: 'a'.repeat(32) };
    fs.writeFileSync(file, JSON.stringify(old));
    const { secrets, created, shown } = loadOrCreateSecrets(dir);
    expect(secrets).to.deep.equal(old);
    expect(created).to.deep.equal([]);
    expect(shown).to.deep.equal({ WEBHOOK_SECRET: true, API_TOKEN: true });
  });

  it('replaces a stored secret shorter than MIN_SECRET_LENGTH and marks only that one unshown', () => {
    fs.writeFileSync(file, JSON.stringify({ WEBHOOK_SECRET: 'w'.repeat(32), API_TOKEN: 'a'.repeat(MIN_SECRET_LENGTH - 1), shown: { WEBHOOK_SECRET: true, API_TOKEN: true } }));
    const { secrets, created, shown } = loadOrCreateSecrets(dir);
    expect(created).to.deep.equal(['API_TOKEN']);
    expect(secrets.WEBHOOK_SECRET).to.equal('w'.repeat(32));
    expect(secrets.API_TOKEN.length).to.be.at.least(MIN_SECRET_LENGTH);
    expect(shown).to.deep.equal({ WEBHOOK_SECRET: true, API_TOKEN: false });
    expect(onDisk()).to.deep.include({ API_TOKEN: secrets.API_TOKEN, shown: { WEBHOOK_SECRET: true, API_TOKEN: false } });
  });

  it('throws an InvariantError naming the file when secrets.json is not JSON', () => {
    fs.writeFileSync(file, '{"API_TOKEN": ');
    expect(() => loadOrCreateSecrets(dir)).to.throw(InvariantError, 'secrets.json');
  });
});

describe('firstStartText', () => {
  const secrets = { WEBHOOK_SECRET: 'generated-webhook-secret-0123456789', API_TOKEN: 'generated-api-token-0123456789ab' };
  const file = '/srv/data/secrets.json';
  const url = 'http://127.0.0.1:8080/';

  it('shows each generated value and the next steps when both are generated', () => {
    const text = firstStartText({ secrets, show: ['WEBHOOK_SECRET', 'API_TOKEN'], file, url });
    expect(text).to.include(`API_TOKEN=${secrets.API_TOKEN}`);
    expect(text).to.include(`WEBHOOK_SECRET=${secrets.WEBHOOK_SECRET}`);
    expect(text).to.include(`Operator console: ${url}`);
    expect(text).to.include(`API_TOKEN in ${file}`);
    const signal = text.split('\n').filter((l) => l.includes('First signal'));
    expect(signal).to.have.length(1);
    expect(signal[0]).to.include(`${url}webhook/tradingview`);
  });

  it('shows only the named secret when the other was set by the operator', () => {
    const text = firstStartText({ secrets, show: ['WEBHOOK_SECRET'], file, url });
    expect(text).to.include(`WEBHOOK_SECRET=${secrets.WEBHOOK_SECRET}`);
    expect(text).not.to.include(secrets.API_TOKEN);
    expect(text).to.include('the API_TOKEN you set');
  });
});
