// Words and small things of issue 27 in a real browser: every glossary link on the analysis pages
// reaches a definition that exists; the docs are served by the app itself; a dataset's problem
// index searches and pages like its REST document; a chart is one tab stop whose points the arrow
// keys walk; deleting an experiment lands on the list with a notice, not on "not found".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launchBrowser, watchedPage, waitForHydration, importFile } from './harness.mjs';

const SLUG = 'demo-rlvr-boundary';
let server, browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('every glossary link on the analysis pages names a definition the glossary has', async () => {
  const { page, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/glossary`);
  await waitForHydration(page);
  const glossaryText = await page.textContent('[data-testid=document]');
  assert.match(glossaryText, /From Trial-and-Error to Improvement/, 'the glossary names the paper');
  const anchors = new Set(await page.$$eval('[data-testid=document] [id]', (els) => els.map((e) => e.id)));
  assert.ok(anchors.size > 20, `${anchors.size} headings`);

  const pages = ['', '/passk', '/token-stats', '/compare', '/rft', '/unsolvable'].map((p) => `/experiments/${SLUG}${p}`);
  let links = 0;
  for (const path of pages) {
    await page.goto(`${server.url}${path}`);
    await waitForHydration(page);
    const hrefs = await page.$$eval('a[href^="/glossary#"]', (as) => as.map((a) => a.getAttribute('href')));
    assert.ok(hrefs.length > 0, `${path} links to the glossary`);
    for (const href of hrefs) {
      assert.ok(anchors.has(href.slice('/glossary#'.length)), `${path}: ${href} has no definition`);
    }
    links += hrefs.length;
  }
  assert.ok(links >= 10, `${links} links`);

  // Following one lands on its definition.
  await page.goto(`${server.url}/experiments/${SLUG}`);
  await waitForHydration(page);
  await page.click('a.gloss:has-text("RBF")');
  await page.waitForURL(/\/glossary#rollout-branching-factor/);
  await page.waitForSelector('h3[id^=rollout-branching-factor]');
  assert.match(await page.textContent('h3[id^=rollout-branching-factor]'), /Rollout branching factor/);
  assert.deepEqual(problems, []);
});

test('documents are served by the app, with links between them kept inside it', async () => {
  const { page, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/docs/api`);
  await waitForHydration(page);
  assert.match(await page.textContent('h1'), /API/);
  // A relative link of the markdown (formats/dataset.md) is a link inside the app.
  const hrefs = await page.$$eval('[data-testid=document] a', (as) => as.map((a) => a.getAttribute('href')));
  assert.ok(hrefs.some((h) => h.startsWith('/docs/')), hrefs.join(' '));
  assert.ok(!hrefs.some((h) => h.endsWith('.md')), hrefs.join(' '));
  // The footer reaches the glossary from any page.
  await page.click('[data-testid=glossary-link]');
  await page.waitForURL(/\/glossary$/);
  // An unknown document is a 404 page.
  const res = await page.goto(`${server.url}/docs/no-such-document`);
  assert.equal(res.status(), 404);
  assert.deepEqual(problems.filter((p) => !p.includes('404')), []);
});

test("a dataset's problem index: search and paging agree with the REST document", async () => {
  const { page, problems } = await watchedPage(browser);
  const datasets = await (await fetch(`${server.url}/api/v1/datasets`)).json();
  const demo = datasets.find((d) => d.name === 'demo-synthetic-math');
  const rest = async (q) => (await fetch(`${server.url}/api/v1/datasets/${demo.id}/problems?${q}`)).json();
  await page.goto(`${server.url}/datasets`);
  await waitForHydration(page);
  await page.click(`[data-testid=dataset-link]:has-text("demo-synthetic-math")`);
  await page.waitForURL(new RegExp(`/datasets/${demo.id}$`));
  await page.waitForSelector('[data-testid=dataset-problems]');
  const all = await rest('limit=50');
  const keys = () => page.$$eval('[data-testid=dataset-problem-link]', (as) => as.map((a) => a.textContent));
  assert.deepEqual(await keys(), all.problems.map((p) => p.key));
  if (all.total > 50) {
    await page.click('[data-testid=dataset-next]');
    await page.waitForURL(/offset=50/);
    const second = await rest('limit=50&offset=50');
    await page.waitForFunction((k) => document.querySelector('[data-testid=dataset-problem-link]')?.textContent === k, second.problems[0].key);
    assert.deepEqual(await keys(), second.problems.map((p) => p.key));
  }
  // Search a word of one prompt.
  const word = all.problems[0].prompt.split(/[^A-Za-z]+/).find((w) => w.length >= 6);
  await page.fill('[data-testid=dataset-q]', word);
  await page.press('[data-testid=dataset-q]', 'Enter');
  await page.waitForURL(new RegExp(`q=${word}`));
  const found = await rest(`q=${encodeURIComponent(word)}&limit=50`);
  await page.waitForFunction((n) => document.querySelector('[data-testid=dataset-count]')?.textContent.includes(`of ${n}`), found.total);
  assert.deepEqual(await keys(), found.problems.map((p) => p.key));
  assert.ok(found.total > 0 && found.total < all.total);
  // A row opens its problem.
  await page.click('[data-testid=dataset-problem-link] >> nth=0');
  await page.waitForURL(/\/problems\/\d+/);
  assert.deepEqual(problems, []);
});

test('a chart is one tab stop; the arrow keys walk its points', async () => {
  const { page, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/${SLUG}/passk`);
  await waitForHydration(page);
  const chart = '[data-testid=passk-chart]';
  const stops = await page.$$eval(`${chart} .hit[tabindex="0"]`, (els) => els.length);
  const points = await page.$$eval(`${chart} .hit`, (els) => els.length);
  assert.equal(stops, 1, 'one tab stop');
  assert.ok(points > 5, `${points} points`);
  assert.ok(await page.getAttribute(`${chart} .chart-svg`, 'aria-label'), 'the chart has an accessible name');
  await page.focus(`${chart} .hit[data-hit="0"]`);
  const first = await page.textContent(`${chart} [data-testid=chart-readout]`);
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction((c) => document.activeElement?.dataset.hit === '1' && document.activeElement.closest(c), chart);
  const second = await page.textContent(`${chart} [data-testid=chart-readout]`);
  assert.notEqual(second, first);
  await page.keyboard.press('End');
  await page.waitForFunction((n) => document.activeElement?.dataset.hit === String(n - 1), points);
  // The tab order has moved with it: still one stop, now the last point.
  assert.equal(await page.$$eval(`${chart} .hit[tabindex="0"]`, (els) => els.map((e) => e.dataset.hit)).then((h) => h.join()), String(points - 1));
  assert.deepEqual(problems, []);
});

test('deleting an experiment lands on the list with a notice', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'caplens-docs-'));
  const file = join(dir, 'gone.jsonl');
  const lines = [0, 1].map((s) => JSON.stringify({ model: 'gone-7b', dataset: 'gone', problem_id: 'p1', sample: s, prompt: 'What is 1+1?', reference: '2', response: `\\boxed{${s + 1}}` }));
  writeFileSync(file, lines.join('\n') + '\n');
  importFile(server, file, ['--experiment', 'e2e-gone']);
  const { page, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/e2e-gone/settings`);
  await waitForHydration(page);
  await page.fill('[data-testid=settings-confirm]', 'e2e-gone');
  await page.click('[data-testid=settings-delete]');
  await page.waitForURL(/\/experiments\?deleted=e2e-gone/);
  assert.match(await page.textContent('[data-testid=deleted-notice]'), /e2e-gone/);
  const list = await (await fetch(`${server.url}/api/v1/experiments`)).json();
  assert.ok(!list.some((e) => e.slug === 'e2e-gone'));
  assert.deepEqual(problems, []);
});
