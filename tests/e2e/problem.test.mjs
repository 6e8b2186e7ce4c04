// The problem page in a real browser: open it from a permalink, check the per-run numbers
// against pass@k computed here (eq. 2, product form), page through the rollouts, expand one,
// filter by an answer cluster, see hostile responses stay text and maths render as MathML, and
// missing ids said plainly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launchBrowser, watchedPage, waitForHydration, importFile, sql } from './harness.mjs';

let server, browser, pid, baseRun, rlRun;
const N_BASE = 25;
const correctBase = (s) => s % 5 === 0 || s === 7; // 0, 5, 10, 15, 20, 7: c = 6
const answerBase = (s) => (correctBase(s) ? '1/2' : s % 2 ? '3' : '\\frac{2}{3}');
const HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> so \\boxed{3}';

// Unbiased pass@k (eq. 2): 1 - prod_{i=n-c+1..n} (1 - k/i); 1 when n - c < k.
function passAtK(n, c, k) {
  if (n - c < k) return 1;
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const lines = [];
  for (let s = 0; s < N_BASE; s++) {
    const response = s === 3 ? HOSTILE : `We find $x = \\frac{1}{2}$ hence \\boxed{${answerBase(s)}}`;
    lines.push({ model: 'e2e-problem-base', dataset: 'e2e-problem', problem_id: 'q1', sample: s,
      correct: correctBase(s), reference: '\\frac{1}{2}', response });
  }
  for (let s = 0; s < 8; s++) {
    lines.push({ model: 'e2e-problem-rl', dataset: 'e2e-problem', problem_id: 'q1', sample: s,
      correct: s < 7, reference: '\\frac{1}{2}', response: `\\boxed{${s < 7 ? '0.5' : '2'}}` });
  }
  const file = join(mkdtempSync(join(tmpdir(), 'caplens-problem-')), 'problem.jsonl');
  writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const report = importFile(server, file, ['--experiment', 'e2e-problem']);
  assert.equal(report.status, 'completed', JSON.stringify(report));
  [[pid]] = sql(server, "SELECT p.id FROM problems p JOIN datasets d ON d.id = p.dataset_id WHERE d.name = 'e2e-problem'");
  const runs = Object.fromEntries(sql(server, 'SELECT m.name, r.id FROM runs r JOIN models m ON m.id = r.model_id'));
  baseRun = runs['e2e-problem-base'];
  rlRun = runs['e2e-problem-rl'];
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('numbers, answer clusters and maths from a permalink', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/problems/${pid}?run=${baseRun}`);
  await waitForHydration(page);
  // Reference answer and the responses' maths are MathML.
  assert.equal(await page.locator('[data-testid=reference] math mfrac').count(), 1);
  const rows = page.locator('[data-testid=problem-stats] tbody tr');
  assert.equal(await rows.count(), 2);
  for (const [run, n, c] of [[baseRun, N_BASE, 6], [rlRun, 8, 7]]) {
    const row = page.locator(`[data-testid=problem-stats] tr[data-run-id="${run}"]`);
    assert.equal(await row.locator('[data-testid=cn]').textContent(), `${c}/${n}`);
    for (const k of [1, 2, 4, 8, 16]) {
      const cell = row.locator(`td[data-k="${k}"]`);
      const expected = k <= n ? passAtK(n, c, k) : null;
      const value = await cell.getAttribute('data-value');
      if (expected === null) {
        assert.equal(value, null, `pass@${k} beyond n = ${n}`);
      } else {
        assert.ok(Math.abs(Number(value) - expected) < 1e-12, `pass@${k}: ${value} vs ${expected}`);
        assert.equal(await cell.textContent(), `${(expected * 100).toFixed(1)}%`);
      }
    }
  }
  // Answer clusters of the base run: 1/2 (as \frac{1}{2}) x6, correct; 3 and 2/3 wrong.
  const group = page.locator(`.answer-group[data-run-id="${baseRun}"]`);
  const correct = group.locator('li.correct');
  assert.equal(await correct.count(), 1);
  assert.equal(await correct.locator('a').getAttribute('data-answer'), '\\frac{1}{2}');
  assert.match(await correct.textContent(), /×6/);
  assert.equal(await group.locator('li').count(), 3);
  assert.deepEqual(problems, []);
  await context.close();
});

test('paging, expanding a rollout, hostile text and the answer filter', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/problems/${pid}?run=${baseRun}`);
  await waitForHydration(page);
  assert.equal(await page.textContent('[data-testid=page-info]'), `Page 1 of 2 · ${N_BASE} rollouts`);
  assert.equal(await page.locator('[data-testid=rollout-list] > li').count(), 20);
  await page.click('[data-testid=pager] a[rel=next]');
  await page.waitForFunction(() => location.search.includes('page=2'));
  await page.waitForFunction(() => document.querySelector('[data-testid=page-info]')?.textContent.startsWith('Page 2 of 2'));
  const samples = await page.locator('[data-testid=rollout-list] .sample').allTextContents();
  assert.deepEqual(samples, ['#20', '#21', '#22', '#23', '#24']);
  // Back to page 1 and expand sample 3 (the hostile response).
  await page.click('[data-testid=pager] a[rel=prev]');
  await page.waitForFunction(() => document.querySelector('[data-testid=page-info]')?.textContent.startsWith('Page 1'));
  const item = page.locator('[data-testid=rollout-list] > li').nth(3);
  const id = await item.getAttribute('data-rollout-id');
  await item.locator('[data-testid=rollout-toggle]').click();
  await page.waitForFunction((id) => new URLSearchParams(location.search).get('open') === id, id);
  const body = page.locator(`li[data-rollout-id="${id}"] [data-testid=response]`);
  await body.waitFor();
  assert.equal(await body.textContent(), HOSTILE, 'the response shows as its literal text');
  assert.equal(await page.locator('[data-testid=rollout-list] img').count(), 0);
  assert.equal(await page.locator('[data-testid=rollout-list] script').count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'response text never runs');
  // Another expanded rollout renders its maths.
  const other = page.locator('[data-testid=rollout-list] > li').nth(1);
  await other.locator('[data-testid=rollout-toggle]').click();
  await other.locator('[data-testid=response] math mfrac').waitFor();
  assert.match(await page.evaluate(() => location.search), /open=\d+%2C\d+/);
  // Filter by the cluster "3": only rollouts answering 3 (odd samples that are wrong).
  await page.locator(`.answer-group[data-run-id="${baseRun}"] a[data-answer="3"]`).click();
  await page.waitForFunction(() => new URLSearchParams(location.search).get('answer') === '3');
  await page.waitForFunction(() => document.querySelector('[data-testid=answer-filter]'));
  const expected = [...Array(N_BASE).keys()].filter((s) => !correctBase(s) && s % 2 === 1);
  await page.waitForFunction((n) => document.querySelector('[data-testid=page-info]')?.textContent.endsWith(`${n} rollouts`), expected.length);
  const shown = await page.locator('[data-testid=rollout-list] .sample').allTextContents();
  assert.deepEqual(shown, expected.map((s) => `#${s}`));
  // Another run's tab lists its rollouts.
  await page.locator('[data-testid=run-tabs] a', { hasText: 'e2e-problem-rl' }).click();
  await page.waitForFunction((r) => new URLSearchParams(location.search).get('run') === String(r), rlRun);
  await page.waitForFunction(() => document.querySelector('[data-testid=page-info]')?.textContent.endsWith('8 rollouts'));
  assert.deepEqual(problems, []);
  await context.close();
});

test('without JavaScript the permalink shows the same view', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const hostile = sql(server, 'SELECT id FROM rollouts WHERE run_id = ? AND sample_index = 3', [baseRun])[0][0];
  await page.goto(`${server.url}/problems/${pid}?run=${baseRun}&open=${hostile}`);
  assert.equal(await page.locator(`li[data-rollout-id="${hostile}"] [data-testid=response]`).textContent(), HOSTILE);
  assert.equal(await page.locator('[data-testid=reference] math').count(), 1);
  assert.equal(await page.locator('[data-testid=rollout-list] > li').count(), 20);
  await context.close();
});

test('missing runs and problems are said plainly', async () => {
  const { page, context, problems } = await watchedPage(browser, { allowHttpErrors: true });
  await page.goto(`${server.url}/problems/${pid}?runs=${baseRun},987654&run=987654`);
  await waitForHydration(page);
  assert.match(await page.textContent('[data-testid=missing-runs]'), /Run 987654 not found/);
  assert.match(await page.textContent('[data-testid=missing-run]'), /Run 987654 has no rollouts of this problem/);
  assert.equal(await page.locator('[data-testid=problem-stats] tbody tr').count(), 1, 'the rest of the view works');
  assert.equal(await page.locator('[data-testid=rollout-list] > li').count(), 20);
  const res = await page.goto(`${server.url}/problems/987654321`);
  assert.equal(res.status(), 404);
  assert.match(await page.textContent('[data-testid=problem-missing]'), /no problem with id “987654321”/);
  assert.deepEqual(problems.filter((p) => !p.includes('404')), []);
  await context.close();
});
