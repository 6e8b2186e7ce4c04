// Training dynamics and token statistics in a real browser, from permalinks: the checkpoints'
// accuracy and entropy against the REST summary (the analysis crate over stored aggregates), the
// entropy-reward fit recomputed here by least squares, and the token-statistics charts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, watchedPage, waitForHydration } from './harness.mjs';

let server, browser;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('training dynamics: checkpoints in step order, numbers and the R = -a exp(H) + b fit', async () => {
  const summary = await (await fetch(`${server.url}/api/v1/experiments/demo-rl-dynamics/summary`)).json();
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/demo-rl-dynamics/dynamics`);
  await waitForHydration(page);
  const rows = await page.$$eval('[data-testid=dynamics-table] tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.ok(rows.length >= 5, `checkpoints: ${rows.length}`);
  const steps = rows.map((r) => Number(r[0]));
  assert.deepEqual(steps, [...steps].sort((a, b) => a - b), 'by training step');
  for (const r of rows) {
    const m = summary.models.find((x) => x.model === r[1]);
    assert.ok(m, `${r[1]} in the summary`);
    // Two and four decimals shown: equal up to the rounding of the last digit.
    assert.ok(Math.abs(Number(r[2]) - m.pass_at_1 * 100) <= 0.005 + 1e-9, `${r[1]} accuracy ${r[2]} vs ${m.pass_at_1}`);
    assert.ok(Math.abs(Number(r[3]) - m.mean_entropy) <= 0.00005 + 1e-12, `${r[1]} entropy ${r[3]} vs ${m.mean_entropy}`);
  }
  // Least squares of R on exp(H), as eq. (law) fits it.
  const xs = rows.map((r) => Math.exp(Number(r[3])));
  const ys = rows.map((r) => Number(r[2]) / 100);
  const mx = xs.reduce((a, b) => a + b) / xs.length;
  const my = ys.reduce((a, b) => a + b) / ys.length;
  const slope = xs.reduce((s, x, i) => s + (x - mx) * (ys[i] - my), 0) / xs.reduce((s, x) => s + (x - mx) ** 2, 0);
  const a = -slope;
  const b = my - slope * mx;
  const text = await page.textContent('[data-testid=law-fit]');
  const [, ga, gb] = text.match(/R = −([\d.]+)·exp\(H\) \+ ([\d.]+)/);
  assert.ok(Math.abs(Number(ga) - a) < 2e-3, `a ${ga} vs ${a}`);
  assert.ok(Math.abs(Number(gb) - b) < 2e-3, `b ${gb} vs ${b}`);
  assert.match(await page.textContent('[data-testid=transition]'), /plateaus from step \d+/);
  // Correct vs incorrect rollout entropy: two more series, toggled by the legend.
  const legend = page.locator('[data-testid=entropy-chart] .legend-item');
  assert.deepEqual(await legend.allTextContents(), ['all rollouts', 'correct rollouts', 'incorrect rollouts']);
  const before = await page.locator('[data-testid=entropy-chart] .hit').count();
  await legend.nth(2).click();
  await page.waitForURL(/hide=neg/);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=entropy-chart] .hit').length < n, before);
  assert.deepEqual(problems, []);
  await context.close();
});

test('token statistics: exact entropies, U-shaped profile split by verdict, PPL and categories', async () => {
  const exp = await (await fetch(`${server.url}/api/v1/experiments/demo-rlvr-boundary`)).json();
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/demo-rlvr-boundary/token-stats?runs=${exp.runs.map((r) => r.id).join(',')}`);
  await waitForHydration(page);
  assert.match(await page.textContent('[data-testid=entropy-sources]'), /exact/);
  assert.equal(await page.locator('[data-testid=position-chart] .legend-item').count(), 6, 'correct + incorrect per run');
  await page.hover('[data-testid=position-chart] .hit >> nth=0');
  await page.waitForFunction(() => /entropy \d+\.\d{3} nats at position/.test(document.querySelector('[data-testid=position-chart] [data-testid=chart-readout]')?.textContent));
  assert.ok(await page.locator('[data-testid=ppl-chart] .hit').count() > 0);
  const cats = await page.locator('[data-testid=token-table-categories] tbody tr').count();
  assert.equal(cats, 3);
  assert.deepEqual(problems, []);
  await context.close();
});
