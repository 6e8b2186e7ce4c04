// The rollout page / token heatmap in a real browser: open a `pos=` permalink (highlighted and
// scrolled into view), hover tokens and check the card's numbers against the estimators written
// out here (truncated entropy and RBF from top-K, paper-notes items 4 and 5), switch metric and
// view, select with a click and the keyboard, and see hostile tokens stay text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launchBrowser, watchedPage, waitForHydration, importFile, sql } from './harness.mjs';

const N = 1300; // three 512-token blocks
let server, browser, id, plainId;
const tokens = [];
const tops = []; // per token: [[token, logprob], ...], chosen first
const logprobs = [];

function tokenAt(i) {
  if (i === 5) return '<script>window.__pwned = 3</script>';
  if (i === 6) return '<img src=x onerror="window.__pwned = 4">';
  return i % 40 === 39 ? '\n' : ` w${i % 50}`;
}

// The trace keeps f32 log-probabilities; the page's numbers start from those.
const f32 = Math.fround;
function probsOf(i) {
  return tops[i].map(([, lp]) => Math.exp(f32(lp))).sort((a, b) => b - a);
}
// Bucket estimator: listed terms plus the missing mass as one outcome (lower bound).
function entropyTopK(i) {
  const p = probsOf(i);
  const mass = p.reduce((a, b) => a + b, 0);
  const m = mass >= 1 - 1e-9 ? 0 : 1 - mass;
  let h = p.reduce((a, x) => a - x * Math.log(x), 0);
  if (m > 0) h -= m * Math.log(m);
  return Math.max(h, 0);
}
// Top-p 0.95 nucleus size; from a list short of 0.95: K + ceil((p - S) / p_min).
function rbfTopK(i) {
  const p = probsOf(i);
  let cum = 0;
  for (let k = 0; k < p.length; k++) {
    cum += p[k];
    if (cum >= 0.95 - 1e-12) return k + 1;
  }
  return p.length + Math.max(1, Math.ceil((0.95 - 1e-12 - cum) / p[p.length - 1]));
}

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  for (let i = 0; i < N; i++) {
    const p = 0.35 + 0.6 * (((i * 7) % 11) / 10); // 0.35 .. 0.95
    const rest = 1 - p;
    const tok = tokenAt(i);
    tokens.push(tok);
    logprobs.push(Math.log(p));
    tops.push([[tok, Math.log(p)], [` alt${i % 3}`, Math.log(rest * 0.6)], [' other', Math.log(rest * 0.3)]]);
  }
  const base = { model: 'e2e-heat-rl', dataset: 'e2e-heat', problem_id: 'h1', reference: '4' };
  const lines = [
    { ...base, sample: 0, correct: true, response: `Let $x^2 = 4$, so \\boxed{4}. ${tokens.join('')}`,
      tokens, token_logprobs: logprobs, top_logprobs: tops },
    { ...base, sample: 1, correct: false, response: 'no trace here \\boxed{5}' },
  ];
  const file = join(mkdtempSync(join(tmpdir(), 'caplens-rollout-')), 'heat.jsonl');
  writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const report = importFile(server, file, ['--experiment', 'e2e-heat', '--format', 'native']);
  assert.equal(report.status, 'completed', JSON.stringify(report));
  const ids = sql(server, `SELECT x.sample_index, x.id FROM rollouts x JOIN runs r ON r.id = x.run_id
    JOIN models m ON m.id = r.model_id WHERE m.name = 'e2e-heat-rl' ORDER BY x.sample_index`);
  [[, id], [, plainId]] = ids;
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const selIndex = (page) => page.evaluate(() => {
  const sel = document.querySelector('.heatmap span.sel');
  if (!sel) return null;
  const chunk = sel.parentElement;
  return Number(chunk.dataset.start) + Array.prototype.indexOf.call(chunk.children, sel);
});

test('a pos= permalink highlights the token, scrolls to it and details it', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/rollouts/${id}?metric=entropy&pos=1200`);
  await waitForHydration(page);
  assert.equal(await page.getAttribute('[data-testid=heatmap]', 'data-tokens'), String(N));
  assert.equal(await page.locator('.heatmap .chunk').count(), 3);
  assert.equal(await page.locator('.heatmap span').count(), N);
  assert.equal(await selIndex(page), 1200);
  await page.waitForFunction(() => {
    const r = document.querySelector('#sel-token').getBoundingClientRect();
    const box = document.querySelector('.heatmap').getBoundingClientRect();
    return r.top >= box.top && r.bottom <= box.bottom && r.top >= 0 && r.bottom <= innerHeight;
  }, null, { timeout: 5000 });
  const panel = page.locator('[data-testid=selected-token]');
  assert.equal(await panel.getAttribute('data-pos'), '1200');
  assert.equal(await page.textContent('[data-testid=selected-prob]'),
    `${Math.exp(f32(logprobs[1200])).toFixed(4)} (ln p = ${f32(logprobs[1200]).toFixed(4)})`);
  assert.equal(await panel.locator('[data-testid=alternatives] tbody tr').count(), 3);
  // The legend says the values are top-K estimates.
  assert.match(await page.textContent('[data-testid=legend]'), /Truncated estimate \(top-K\)/);
  assert.match(await page.textContent('[data-testid=value-count]'), new RegExp(`${N} of ${N} tokens`));
  assert.deepEqual(problems, []);
  await context.close();
});

test('hover card, metric switch, click and keyboard selection', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/rollouts/${id}`);
  await waitForHydration(page);
  assert.equal(await page.getAttribute('[data-testid=legend]', 'data-metric'), 'entropy', 'default metric');
  const hoverCheck = async (i, expected) => {
    await page.locator('.heatmap span').nth(i).hover();
    await page.waitForFunction((i) => document.querySelector('[data-testid=token-card]')?.dataset.pos === String(i), i);
    const value = Number(await page.getAttribute('[data-testid=card-value]', 'data-value'));
    assert.ok(Math.abs(value - expected) <= 1e-6 * Math.max(1, expected), `token ${i}: ${value} vs ${expected}`);
    assert.match(await page.textContent('[data-testid=card-prob]'), new RegExp(`^${Math.exp(f32(logprobs[i])).toFixed(4)} `));
  };
  for (const i of [0, 10, 777]) await hoverCheck(i, entropyTopK(i));
  // The alternatives arrive after a short rest on the token.
  await page.locator('[data-testid=token-card] [data-testid=alternatives]').waitFor();
  assert.equal(await page.locator('[data-testid=token-card] [data-testid=alternatives] tbody tr').count(), 3);
  // Switch to RBF.
  await page.click('[data-testid=metric-tabs] a[data-metric=rbf]');
  await page.waitForFunction(() => new URLSearchParams(location.search).get('metric') === 'rbf');
  await page.waitForFunction(() => document.querySelector('[data-testid=legend]')?.dataset.metric === 'rbf');
  for (const i of [0, 10, 777]) await hoverCheck(i, rbfTopK(i));
  assert.equal(await page.locator('[data-testid=metric-tabs] [data-metric=impact]').evaluate((e) => e.tagName), 'SPAN',
    'no impacts in this trace: the tab is disabled');
  // Click selects (the URL gets pos=, replaced), and the highlight moves.
  const before = await page.evaluate(() => history.length);
  await page.locator('.heatmap span').nth(20).click();
  await page.waitForFunction(() => new URLSearchParams(location.search).get('pos') === '20');
  assert.equal(await page.evaluate(() => history.length), before, 'replace, not push');
  assert.equal(await selIndex(page), 20);
  assert.equal(await page.locator('.heatmap span.sel').count(), 1);
  await page.waitForFunction(() => document.querySelector('[data-testid=selected-token]')?.dataset.pos === '20');
  // Keyboard: arrows move the card, Enter selects.
  await page.mouse.move(0, 0);
  await page.focus('[data-testid=heatmap]');
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction(() => document.querySelector('[data-testid=token-card]')?.dataset.pos === '21');
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => new URLSearchParams(location.search).get('pos') === '22');
  assert.equal(await selIndex(page), 22);
  assert.deepEqual(problems, []);
  await context.close();
});

test('hostile tokens stay text; the rendered view shows maths', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/rollouts/${id}?metric=logprob`);
  await waitForHydration(page);
  const heat = page.locator('[data-testid=heatmap]');
  assert.equal(await heat.locator('script, img').count(), 0);
  assert.equal(await page.locator('.heatmap span').nth(5).textContent(), tokenAt(5));
  assert.equal(await page.locator('.heatmap span').nth(6).textContent(), tokenAt(6));
  await page.locator('.heatmap span').nth(6).hover();
  await page.waitForFunction(() => document.querySelector('[data-testid=token-card]')?.dataset.pos === '6');
  assert.equal(await page.locator('[data-testid=token-card] code').first().textContent(), tokenAt(6));
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  // Log-probability colours: the card shows ln p itself.
  const v = Number(await page.getAttribute('[data-testid=card-value]', 'data-value'));
  assert.ok(Math.abs(v - f32(logprobs[6])) < 1e-7);
  await page.click('[data-testid=view-toggle] a:has-text("Rendered text")');
  await page.waitForFunction(() => new URLSearchParams(location.search).get('view') === 'text');
  await page.locator('[data-testid=response] math msup').first().waitFor();
  assert.equal(await page.locator('[data-testid=response] script, [data-testid=response] img').count(), 0);
  assert.match(await page.textContent('[data-testid=response]'), /<script>window.__pwned = 3<\/script>/);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a rollout without a trace, and a missing rollout', async () => {
  const { page, context, problems } = await watchedPage(browser, { allowHttpErrors: true });
  await page.goto(`${server.url}/rollouts/${plainId}?pos=3`);
  await waitForHydration(page);
  assert.match(await page.textContent('[data-testid=no-trace]'), /no token trace/);
  assert.match(await page.textContent('[data-testid=response]'), /no trace here/);
  const res = await page.goto(`${server.url}/rollouts/987654321?metric=rbf`);
  assert.equal(res.status(), 404);
  assert.match(await page.textContent('[data-testid=rollout-missing]'), /no rollout with id “987654321”/);
  // An unknown metric in a permalink is said, and the page still works.
  await page.goto(`${server.url}/rollouts/${id}?metric=bogus`);
  await waitForHydration(page);
  assert.match(await page.textContent('[data-testid=unknown-metric]'), /“bogus” is not a metric/);
  assert.equal(await page.locator('.heatmap span').count(), N);
  assert.deepEqual(problems.filter((p) => !p.includes('404')), []);
  await context.close();
});
