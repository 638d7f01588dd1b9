import { expect } from 'chai';
import {
  PROMPT_VERSION, TEMPLATE_VERSION, buildPrompt, createExplainer, cutToLength, explain, withExplanation,
  type ExplainInput, type ExplainLogger, type LlmSettings,
} from '../../src/proposal/ai-summary';
import { FakeLlm } from '../fakes/fake-llm';

const API_KEY = 'sk-test-0123456789abcdef';

const input: ExplainInput = {
  symbol: 'BTC/KRW',
  side: 'buy',
  notional: 500_000,
  quantity: null,
  price: 100_000_000,
  priceSource: 'market',
  confidence: 2 / 3,
  reasons: [
    { code: 'signal', message: 'buy signal for BTC/KRW (tradingview, ema-cross, 1h)' },
    { code: 'trend_up', message: 'close 102 above SMA3 101' },
    { code: 'rsi_out_of_band', message: 'RSI3 81.8 above the buy band 30–70' },
    { code: 'volume_high', message: 'last volume 20 ≥ 1.5 × 3-candle average 10 (15)' },
  ],
};

const TEMPLATE = 'Buy BTC/KRW for about 500,000 KRW at 100,000,000 KRW, confidence 0.67. Supported by: close 102 above SMA3 101; last volume 20 ≥ 1.5 × 3-candle average 10 (15).';

class RecordingLogger implements ExplainLogger {
  readonly lines: Array<{ message: string; meta: Record<string, unknown> }> = [];
  warn(message: string, meta: Record<string, unknown>): void {
    this.lines.push({ message, meta });
  }
}

describe('explain', () => {
  let fake: FakeLlm;
  let logger: RecordingLogger;

  beforeEach(async () => {
    fake = await FakeLlm.start();
    logger = new RecordingLogger();
  });

  afterEach(async () => {
    await fake.close();
  });

  const llm = (over: Partial<LlmSettings> = {}): LlmSettings => ({ baseUrl: fake.baseUrl, apiKey: API_KEY, model: 'gpt-test', timeoutMs: 2_000, maxChars: 600, ...over });

  it('returns the template without any request when LLM_BASE_URL is empty', async () => {
    const result = await explain(input, { llm: llm({ baseUrl: '' }), quoteCurrency: 'KRW', logger });
    expect(result).to.deep.equal({ text: TEMPLATE, source: 'template', promptVersion: TEMPLATE_VERSION });
    expect(fake.requests).to.have.length(0);
  });

  it('stores the answer with the model and prompt version when the LLM answers', async () => {
    fake.behave({ kind: 'success', content: '  Buy a little BTC: the trend and volume agree, RSI is high.  ', model: 'gpt-test-2025' });
    const result = await createExplainer({ llm: llm(), quoteCurrency: 'KRW', logger }).explain(input);
    expect(result).to.deep.equal({ text: 'Buy a little BTC: the trend and volume agree, RSI is high.', source: 'llm', model: 'gpt-test-2025', promptVersion: PROMPT_VERSION });
    expect(logger.lines).to.have.length(0);
  });

  it('posts an OpenAI-compatible request with the prompt, model and bearer key', async () => {
    await explain(input, { llm: llm(), quoteCurrency: 'KRW', logger });
    expect(fake.requests).to.have.length(1);
    const req = fake.requests[0]!;
    expect(req.method).to.equal('POST');
    expect(req.path).to.equal('/v1/chat/completions');
    expect(req.headers['authorization']).to.equal(`Bearer ${API_KEY}`);
    const prompt = buildPrompt(input, 'KRW', 600);
    expect(req.body).to.deep.equal({
      model: 'gpt-test',
      messages: [{ role: 'system', content: prompt.system }, { role: 'user', content: prompt.user }],
      max_tokens: 300,
      temperature: 0,
    });
    expect(prompt.user).to.contain('- rsi_out_of_band: RSI3 81.8 above the buy band 30–70');
  });

  it('sends no Authorization header when LLM_API_KEY is empty', async () => {
    await explain(input, { llm: llm({ apiKey: '' }), quoteCurrency: 'KRW', logger });
    expect(fake.requests[0]!.headers).to.not.have.property('authorization');
  });

  it('falls back to the template before the slow answer comes when the LLM is slower than the timeout', async () => {
    fake.behave({ kind: 'slow', delayMs: 60_000, content: 'too late' });
    const result = await explain(input, { llm: llm({ timeoutMs: 150 }), quoteCurrency: 'KRW', logger });
    expect(fake.requests).to.have.length(1);
    expect(fake.requests[0]!.answered, 'the fake had answered before explain resolved').to.equal(false);
    expect(result).to.deep.equal({ text: TEMPLATE, source: 'template', promptVersion: TEMPLATE_VERSION, error: { code: 'llm_timeout', message: 'no answer within 150 ms' } });
    expect(logger.lines).to.have.length(1);
  });

  it('falls back to the template with an error when the LLM answers HTTP 500, keeping the key out', async () => {
    fake.behave({ kind: 'status', status: 500, body: JSON.stringify({ error: { message: `Incorrect API key provided: ${API_KEY}` } }) });
    const result = await explain(input, { llm: llm(), quoteCurrency: 'KRW', logger });
    expect(result.source).to.equal('template');
    expect(result.text).to.equal(TEMPLATE);
    expect(result.error).to.deep.equal({ code: 'llm_http_error', message: 'HTTP 500 Internal Server Error from the LLM endpoint' });
    expect(logger.lines).to.have.length(1);
    expect(logger.lines[0]!.meta).to.include({ code: 'llm_http_error', model: 'gpt-test' });
    expect(JSON.stringify(result)).to.not.contain(API_KEY);
    expect(JSON.stringify(logger.lines)).to.not.contain(API_KEY);
  });

  it('cuts an oversize answer to LLM_MAX_CHARS at a word boundary with an ellipsis', async () => {
    fake.behave({ kind: 'oversize', chars: 5_000 });
    const result = await explain(input, { llm: llm({ maxChars: 100 }), quoteCurrency: 'KRW', logger });
    expect(result.source).to.equal('llm');
    expect(result.text.length).to.be.at.most(100);
    expect(result.text.endsWith('…')).to.equal(true);
    const words = result.text.slice(0, -1).split(' ');
    expect(words.every((w) => ['price', 'trend', 'volume', 'confirms', 'the', 'entry', 'above', 'average', 'momentum', 'risk'].includes(w)), result.text).to.equal(true);
  });

  it('falls back with llm_malformed when the body is not JSON', async () => {
    fake.behave({ kind: 'malformed', body: '<html>bad gateway</html>' });
    const result = await explain(input, { llm: llm(), quoteCurrency: 'KRW', logger });
    expect(result.source).to.equal('template');
    expect(result.error?.code).to.equal('llm_malformed');
  });

  it('falls back with llm_malformed when the JSON has no choices', async () => {
    fake.behave({ kind: 'malformed', body: '{"object":"chat.completion","choices":[]}' });
    const result = await explain(input, { llm: llm(), quoteCurrency: 'KRW', logger });
    expect(result.error).to.deep.equal({ code: 'llm_malformed', message: 'the answer has no choices[0]' });
  });

  it('falls back with llm_empty when the content is blank', async () => {
    fake.behave({ kind: 'empty' });
    const result = await explain(input, { llm: llm(), quoteCurrency: 'KRW', logger });
    expect(result.error?.code).to.equal('llm_empty');
  });

  it('falls back with llm_network when nothing listens at the address', async () => {
    await fake.close();
    const result = await explain(input, { llm: llm(), quoteCurrency: 'KRW', logger });
    expect(result.source).to.equal('template');
    expect(result.error?.code).to.equal('llm_network');
    fake = await FakeLlm.start(); // for afterEach
  });
});

describe('cutToLength', () => {
  it('leaves text that fits unchanged, with whitespace collapsed', () => {
    expect(cutToLength(' a  b\nc ', 10)).to.equal('a b c');
  });

  it('cuts at the last space before the limit and trims trailing punctuation', () => {
    expect(cutToLength('one two, three four', 12)).to.equal('one two…');
  });

  it('cuts inside a word when the only space would lose more than half', () => {
    expect(cutToLength('a supercalifragilistic', 10)).to.equal('a superca…');
  });
});

describe('withExplanation', () => {
  const draft = { explanation: 'template', reasons: [{ code: 'signal', message: 's' }] };

  it('replaces the explanation and names the model when the LLM wrote it', () => {
    const d = withExplanation(draft, { text: 'llm text', source: 'llm', model: 'gpt-test', promptVersion: PROMPT_VERSION });
    expect(d.explanation).to.equal('llm text');
    expect(d.reasons.at(-1)).to.deep.equal({ code: 'explanation_llm', message: `explanation written by gpt-test (prompt ${PROMPT_VERSION})` });
  });

  it('adds explanation_fallback when the LLM failed', () => {
    const d = withExplanation(draft, { text: 'template', source: 'template', promptVersion: TEMPLATE_VERSION, error: { code: 'llm_timeout', message: 'no answer within 5000 ms' } });
    expect(d.reasons.at(-1)?.code).to.equal('explanation_fallback');
  });

  it('adds nothing when the template is used by configuration', () => {
    const d = withExplanation(draft, { text: 'template', source: 'template', promptVersion: TEMPLATE_VERSION });
    expect(d.reasons).to.deep.equal(draft.reasons);
  });
});
