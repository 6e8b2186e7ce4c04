// The analysis views in a real browser, each opened from a permalink: pass@k curves (numbers
// against the REST read-back, which is the analysis crate over stored aggregates), series
// toggling and hover readouts, the unsolvable Venn with a clicked region, the SFT-vs-RL
// takeaways, stale permalinks and chart export.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, watchedPage, waitForHydration } from './harness.mjs';

const SLUG = 'demo-rlvr-boundary';
let server, browser, runIds, passk, unsolvable;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const exp = await (await fetch(`${server.url}/api/v1/experiments/${SLUG}`)).json();
  runIds = exp.runs.map((r) => r.id);
  passk = await (await fetch(`${server.url}/api/v1/experiments/${SLUG}/passk?k=all`)).json();
  unsolvable = await (await fetch(`${server.url}/api/v1/experiments/${SLUG}/unsolvable`)).json();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('pass@k page from a permalink shows the analysis numbers, toggles series and reads out points', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/${SLUG}/passk?runs=${runIds.join(',')}`);
  await waitForHydration(page);
  // Table columns: k, then (pass@k %, problems) per run in URL order.
  const rows = await page.$$eval('[data-testid=passk-table] tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  // The page's k grid: powers of two up to n, and n.
  const n = Math.max(...passk.models.flatMap((m) => m.points.map((p) => p.k)));
  const grid = [];
  for (let k = 1; k <= n; k *= 2) grid.push(k);
  if (grid[grid.length - 1] !== n) grid.push(n);
  assert.deepEqual(rows.map((r) => Number(r[0])), grid);
  for (const [i, model] of passk.models.entries()) {
    for (const point of model.points.filter((p) => grid.includes(p.k))) {
      const row = rows.find((r) => r[0] === String(point.k));
      assert.equal(row[1 + 2 * i], (point.pass_at_k * 100).toFixed(2), `${model.model} pass@${point.k}`);
      assert.equal(row[2 + 2 * i], String(point.problems));
    }
  }
  const hits = () => page.locator('[data-testid=passk-chart] .hit').count();
  const before = await hits();
  assert.equal(before, passk.models.length * grid.length, 'one hover target per point');
  // Hover a point: exact value in the readout.
  await page.hover('[data-testid=passk-chart] .hit >> nth=0');
  await page.waitForFunction(() => /pass@1 = \d+\.\d %/.test(document.querySelector('[data-testid=passk-chart] [data-testid=chart-readout]')?.textContent));
  // Toggle the first series off: the URL remembers it and its points leave the chart.
  await page.click('[data-testid=passk-chart] .legend-item >> nth=0');
  await page.waitForURL(/hide=/);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=passk-chart] .hit').length < n, before);
  assert.equal(await page.getAttribute('[data-testid=passk-chart] .legend-item >> nth=0', 'aria-pressed'), 'false');
  // The same link opened fresh gives the same view.
  const url = page.url();
  const other = await context.newPage();
  await other.goto(url);
  assert.equal(await other.locator('[data-testid=passk-chart] .hit').count(), await hits());
  // Export links answer a figure.
  const svgHref = await page.getAttribute('[data-testid=passk-chart] [data-testid=export-svg]', 'href');
  const res = await fetch(server.url + svgHref);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /image\/svg\+xml/);
  const csv = await page.getAttribute('[data-testid=export-csv]', 'href');
  assert.match(decodeURIComponent(csv), /^data:text\/csv;charset=utf-8,k,/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('unsolvable page: Venn regions match the analysis, a clicked region lists its problems', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/${SLUG}/unsolvable?runs=${runIds.join(',')}`);
  await waitForHydration(page);
  const regionTexts = await page.locator('[data-testid=region-link]').allTextContents();
  assert.equal(regionTexts.length, 7, 'three sets: seven regions');
  for (const r of unsolvable.regions) {
    const label = r.models.join(' ∩ ') + (r.models.length < 3 ? ' only' : '') + `: ${r.problems.length}`;
    assert.ok(regionTexts.includes(label), `${label} in ${regionTexts}`);
  }
  // Click the region of problems no model solves, in the chart itself.
  const all = unsolvable.regions.find((r) => r.models.length === 3);
  await page.click(`[data-testid=sets-chart] .hit[aria-label^="${all.problems.length} problem"][aria-label*="all of"]`);
  await page.waitForSelector('[data-testid=region-detail]');
  assert.match(page.url(), /region=/);
  const keys = await page.locator('[data-testid=region-table] tbody th').allTextContents();
  assert.deepEqual(keys, all.problems);
  const firstRow = await page.locator('[data-testid=region-table] tbody tr >> nth=0').locator('td').allTextContents();
  assert.match(firstRow[0], /^0\/\d+$/);
  assert.match(firstRow[1], /^≤ \d+\.\d\d %$/);
  // The k selector: fewer attempts, never fewer unsolvable problems.
  await page.click('[data-testid=k-picker] a >> text=/^4$/');
  await page.waitForURL(/k=4/);
  await page.waitForSelector('[data-testid=region-list]');
  assert.deepEqual(problems, []);
  await context.close();
});

test('SFT vs RL page: lineage found, takeaways link to the views that show them', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/${SLUG}/compare`);
  await waitForHydration(page);
  const items = page.locator('[data-testid=takeaways] li a');
  const texts = await items.allTextContents();
  const [base, sft, rl] = passk.models;
  const d1 = ((rl.points[0].pass_at_k - sft.points[0].pass_at_k) * 100).toFixed(1);
  assert.ok(texts.some((t) => t.includes(`demo-rl-7b: pass@1 ${d1 >= 0 ? '+' : ''}${d1} pts over demo-sft-7b`)), texts.join('\n'));
  await items.first().click();
  await page.waitForURL(/\/passk\?runs=/);
  await page.waitForSelector('[data-testid=passk-table]');
  assert.ok(base);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a permalink naming a deleted run says so and keeps the rest', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/${SLUG}/passk?runs=999999,${runIds[0]}&tag=nope`);
  assert.match(await page.textContent('[data-testid=missing-runs]'), /999999/);
  assert.match(await page.textContent('[data-testid=missing-tag]'), /nope/);
  assert.equal(await page.locator('[data-testid=passk-chart] .legend-item').count(), 1);
  const res = await page.goto(`${server.url}/experiments/no-such-thing/unsolvable`);
  assert.equal(res.status(), 404);
  assert.match(await page.textContent('h1'), /Experiment not found/);
  assert.deepEqual(problems.filter((p) => !p.includes('404')), []);
  await context.close();
});

test('overview: per-model pass@1, pass@max-k and unsolvable counts match the read-back API', async () => {
  const summary = await (await fetch(`${server.url}/api/v1/experiments/${SLUG}/summary`)).json();
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/${SLUG}`);
  await waitForHydration(page);
  const rows = await page.$$eval('[data-testid=overview-table] tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.equal(rows.length, passk.models.length);
  for (const m of passk.models) {
    const row = rows.find((r) => r[0] === m.model);
    assert.ok(row, `${m.model} in the overview`);
    const s = summary.models.find((x) => x.model === m.model);
    // One decimal shown: equal up to the rounding of the last digit.
    const near = (shown, value) => Math.abs(parseFloat(shown) - value * 100) <= 0.05 + 1e-9;
    assert.ok(near(row[3], s.pass_at_1), `${m.model} pass@1 ${row[3]} vs ${s.pass_at_1}`);
    const last = m.points[m.points.length - 1];
    assert.ok(near(row[4], last.pass_at_k) && row[4].endsWith(`@${last.k}`), `${m.model} pass@max-k ${row[4]} vs ${last.pass_at_k}@${last.k}`);
    assert.equal(row[5], String(unsolvable.unsolvable[m.model].length), `${m.model} unsolvable`);
  }
  const tex = decodeURIComponent(await page.getAttribute('section:has([data-testid=overview-table]) [data-testid=export-latex]', 'href'));
  assert.match(tex, /\\begin\{tabular\}/);
  assert.deepEqual(problems, []);
  await context.close();
});
