import { expect } from 'chai';
import { startService, type ServiceHandle } from '../support/service-process';

describe('operator console (GET /)', function () {
  this.timeout(60_000);
  let svc: ServiceHandle;
  before(async () => { svc = await startService(); });
  after(async () => { await svc.stop(); });

  it('serves an HTML page without a token that asks for API_TOKEN and writes data as text, never markup', async () => {
    const res = await fetch(`${svc.url}/`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/text\/html/);
    expect(res.headers.get('content-security-policy')).to.include("default-src 'self'");
    const html = await res.text();
    expect(html).to.include('API_TOKEN');
    expect(html).to.include('/api/proposals?state=awaiting-approval');
    expect(html).to.not.include('innerHTML');
    expect(html).to.not.include(svc.token);
  });
});
