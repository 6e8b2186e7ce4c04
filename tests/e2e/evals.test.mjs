// Evaluation runs in a real browser (issue 7, "done when"): a new user, with no configuration,
// starts a run of the embedded model on the built-in dataset from the Evaluations page, watches
// it progress live (server-sent events, no reload), and browses its pass@k curve and a token
// heatmap. Also: a dataset upload with a bad line is refused naming file, line and field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launchBrowser, watchedPage, waitForHydration, sql } from './harness.mjs';

let server, browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('start an embedded run from the browser, watch it, browse its pass@k and heatmap', async () => {
  const { page, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/evals`);
  await waitForHydration(page);
  // Sensible defaults: the built-in engine and dataset are preselected.
  assert.equal(await page.inputValue('[data-testid=eval-engine]'), 'embedded');
  assert.equal(await page.inputValue('[data-testid=eval-dataset]'), 'arith-calibrated');
  assert.match(await page.textContent('[data-testid=eval-estimate]'), /48 problems × 16 samples = 768 samples; at most 73728 tokens/);
  // A small run: 3 problems x 4 samples.
  await page.fill('[data-testid=eval-limit]', '3');
  await page.fill('[data-testid=eval-n]', '4');
  await page.fill('[data-testid=eval-max_tokens]', '24');
  await page.fill('[data-testid=eval-experiment]', 'browser-eval');
  assert.match(await page.textContent('[data-testid=eval-estimate]'), /3 problems × 4 samples = 12 samples; at most 288 tokens/);
  await page.click('[data-testid=eval-run]');
  await page.waitForURL(/\/evals\/\d+$/);
  const id = page.url().split('/').pop();
  // Live progress without reloading: the samples line moves and the status ends completed.
  const seen = new Set();
  const deadline = Date.now() + 240_000;
  for (;;) {
    seen.add(await page.textContent('[data-testid=eval-samples]'));
    const status = await page.textContent('[data-testid=eval-status]');
    if (status === 'completed') break;
    assert.notEqual(status, 'failed', await page.textContent('body'));
    assert.ok(Date.now() < deadline, 'the run did not finish in 4 minutes');
    await page.waitForTimeout(150);
  }
  assert.ok(seen.size >= 2, `progress moved on the open page: ${[...seen].join(' | ')}`);
  assert.match(await page.textContent('[data-testid=eval-samples]'), /^12 of 12 \(100 %\)/);
  assert.equal(await page.locator('[data-testid=eval-passk] tbody tr').count(), 3, 'pass@1, @2, @4');
  // The run's pass@k curve.
  await page.click('[data-testid=eval-passk-link]');
  await page.waitForURL(/\/experiments\/browser-eval\/passk\?runs=\d+/);
  await page.locator('.chart-svg svg').first().waitFor();
  assert.match(await page.textContent('main'), /SmolLM2-135M-Instruct/);
  // A token heatmap of one of its rollouts: exact entropies from the embedded engine.
  const [[rollout, tokens]] = sql(server,
    `SELECT r.id, r.token_count FROM rollouts r JOIN evaluations e ON e.run_id = r.run_id
     WHERE e.id = ? AND r.token_count > 0 ORDER BY r.id LIMIT 1`, [Number(id)]);
  await page.goto(`${server.url}/rollouts/${rollout}?metric=entropy`);
  await waitForHydration(page);
  assert.equal(await page.getAttribute('[data-testid=heatmap]', 'data-tokens'), String(tokens));
  assert.equal(await page.locator('[data-testid=truncated]').count(), 0, 'exact, not a top-K estimate');
  // Which token decides the outcome: an intervention at its most uncertain token (eqs. 5-6).
  await page.fill('[data-testid=intervene-positions]', '1');
  await page.fill('[data-testid=intervene-k]', '2');
  await page.click('[data-testid=intervene]');
  await page.waitForSelector('[data-testid=intervene-queued]');
  const job = (await page.textContent('[data-testid=intervene-queued]')).match(/intervention (\d+)/)[1];
  for (const until = Date.now() + 120_000; ;) {
    const v = await (await fetch(`${server.url}/api/v1/interventions/${job}`)).json();
    if (v.status === 'completed') break;
    assert.notEqual(v.status, 'failed', JSON.stringify(v));
    assert.ok(Date.now() < until, 'intervention too slow');
    await page.waitForTimeout(200);
  }
  await page.goto(`${server.url}/rollouts/${rollout}?metric=impact`);
  await waitForHydration(page);
  assert.match(await page.textContent('[data-testid=value-count]'), new RegExp(`^1 of ${tokens} tokens have a value`));
  assert.deepEqual(problems, []);
});

test('a dataset with a bad line is refused whole; a good one joins the form', async () => {
  const { page, problems } = await watchedPage(browser, { allowHttpErrors: true });
  const dir = mkdtempSync(join(tmpdir(), 'caplens-dataset-'));
  const bad = join(dir, 'bad-set.jsonl');
  writeFileSync(bad, '{"id": "a", "prompt": "What is 1 + 1?", "answer": "2"}\n{"id": "b", "prompt": "What is 2 + 2?"}\n');
  const good = join(dir, 'good-set.jsonl');
  writeFileSync(good, '{"id": "a", "prompt": "What is 1 + 1? <script>window.__pwned=1</script>", "answer": "2"}\n');
  await page.goto(`${server.url}/evals`);
  await waitForHydration(page);
  await page.setInputFiles('[data-testid=dataset-file]', bad);
  await page.click('[data-testid=dataset-upload]');
  await page.waitForSelector('[data-testid=dataset-error]');
  assert.match(await page.textContent('[data-testid=dataset-error]'), /bad-set\.jsonl:2: field "answer": missing/);
  assert.deepEqual(sql(server, "SELECT COUNT(*) FROM datasets WHERE name = 'bad-set'"), [[0]]);
  await page.setInputFiles('[data-testid=dataset-file]', good);
  await page.click('[data-testid=dataset-upload]');
  await page.waitForSelector('[data-testid=dataset-ok]');
  assert.match(await page.textContent('[data-testid=dataset-ok]'), /Dataset "good-set" stored: 1 problems/);
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=eval-dataset] option')].some((o) => o.value === 'good-set'));
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.deepEqual(problems, []);
});
