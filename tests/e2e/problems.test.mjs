// The problems view (issue 27) in a real browser against the REST document it shares its read
// path with: the paired counts, sorting by Δ, the change filter, full-text search and paging,
// each a URL; and the problem page recounting after a reviewer marks an answer correct.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, watchedPage, waitForHydration } from './harness.mjs';

const SLUG = 'demo-rlvr-boundary';
let server, browser, a, b;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const exp = await (await fetch(`${server.url}/api/v1/experiments/${SLUG}`)).json();
  // SFT (A) against RL (B).
  [a, b] = exp.runs.slice(-2).map((r) => r.id);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const rest = async (query) =>
  (await fetch(`${server.url}/api/v1/experiments/${SLUG}/problems?runs=${a},${b}&${query}`)).json();
const rowKeys = (page) => page.$$eval('[data-testid=problem-row] th a', (as) => as.map((x) => x.textContent));

test('problems view: paired counts, sort by Δ, regressed filter, search and paging as URLs', async () => {
  const { page, problems } = await watchedPage(browser);
  const all = await rest('limit=500');
  await page.goto(`${server.url}/experiments/${SLUG}/problems?runs=${a},${b}`);
  await waitForHydration(page);
  // The header's counts are the document's (which tests compare with the raw rollouts).
  for (const what of ['improved', 'regressed', 'unchanged']) {
    assert.equal(await page.textContent(`[data-testid=paired-${what}]`), String(all.paired[what]), what);
  }
  assert.match(await page.textContent('[data-testid=paired]'), /Wilcoxon signed-rank test/);
  assert.equal((await rowKeys(page)).length, Math.min(50, all.total));
  assert.deepEqual(await rowKeys(page), all.problems.slice(0, 50).map((p) => p.key));

  // Sort by Δ (most regressed first), from the column header.
  await page.click('[data-testid=sort-delta]');
  await page.waitForURL(/sort=delta/);
  await page.waitForFunction(() => document.querySelector('th[aria-sort=ascending] [data-testid=sort-delta]'));
  const byDelta = await rest('sort=delta&limit=500');
  assert.deepEqual((await rowKeys(page)).slice(0, 10), byDelta.problems.slice(0, 10).map((p) => p.key));

  // Only the regressed ones.
  await page.click('[data-testid=change-regressed]');
  await page.waitForURL(/change=regressed/);
  const regressed = await rest('sort=delta&change=regressed&limit=500');
  await page.waitForFunction((n) => document.querySelector('[data-testid=problems-total]')?.textContent.includes(`of ${n}`), regressed.total);
  assert.deepEqual(await rowKeys(page), regressed.problems.slice(0, 50).map((p) => p.key));
  assert.ok(regressed.problems.every((p) => p.delta < 0));

  // Full-text search: a word of the first prompt.
  await page.goto(`${server.url}/experiments/${SLUG}/problems?runs=${a},${b}`);
  await waitForHydration(page);
  const word = all.problems[0].prompt.split(/[^A-Za-z]+/).find((w) => w.length >= 6);
  await page.fill('[data-testid=problems-q]', word);
  await page.press('[data-testid=problems-q]', 'Enter');
  await page.waitForURL(new RegExp(`q=${word}`));
  const found = await rest(`q=${encodeURIComponent(word)}&limit=500`);
  assert.ok(found.total > 0 && found.total < all.total, `${word}: ${found.total}`);
  await page.waitForFunction((n) => document.querySelector('[data-testid=problems-total]')?.textContent.includes(`of ${n}`), found.total);
  assert.deepEqual(await rowKeys(page), found.problems.slice(0, 50).map((p) => p.key));

  // Paging: five per page, the second page.
  await page.goto(`${server.url}/experiments/${SLUG}/problems?runs=${a},${b}&limit=5`);
  await waitForHydration(page);
  await page.click('[data-testid=page-next]');
  await page.waitForURL(/offset=5/);
  await page.waitForFunction((k) => document.querySelector('[data-testid=problem-row] th a')?.textContent === k, all.problems[5].key);
  assert.deepEqual(await rowKeys(page), all.problems.slice(5, 10).map((p) => p.key));
  assert.deepEqual(problems, []);
});

test('problem page: marking a wrong answer correct recounts c/n and the rollout marks at once', async () => {
  const { page, problems } = await watchedPage(browser);
  const all = await rest('limit=500');
  // A problem RL (B) never solves.
  const target = all.problems.find((p) => p.runs[b] && p.runs[b].c === 0);
  assert.ok(target, 'the demo has a problem RL never solves');
  await page.goto(`${server.url}/problems/${target.id}?experiment=${SLUG}&run=${b}`);
  await waitForHydration(page);
  assert.equal(await page.$('[data-testid=problem-review-note]'), null, 'no overrides yet');
  const wrongRow = page.locator('[data-testid=override-answer]', { hasText: 'wrong (verifier)' }).first();
  await wrongRow.waitFor();
  await page.fill('[data-testid=override-reason]', 'equivalent to the reference');
  await wrongRow.locator('[data-testid=mark-correct]').click();
  // Without a reload, the page says it counts the override and the marks follow it.
  await page.waitForSelector('[data-testid=problem-review-note]', { timeout: 20_000 });
  assert.match(await page.textContent('[data-testid=problem-review-note]'), /Counted with the 1 verdict override/);
  await page.waitForSelector('[data-testid=answer-clusters] li[data-reviewed=true]');
  // The reviewed c/n of RL is the document's with reviewed counts.
  const after = await rest('limit=500');
  const c = after.problems.find((p) => p.id === target.id).runs[b].c;
  assert.ok(c > 0, 'the override made some RL rollouts correct');
  assert.ok((await page.textContent('[data-testid=problem-stats]')).includes(`${c}/${target.runs[b].n}`));
  await page.waitForSelector('text=✓ correct (reviewed)');
  assert.deepEqual(problems, []);
});

test('triage: previous / next and breadcrumbs within the problems view, a Venn region and the review queue', async () => {
  const { page, problems } = await watchedPage(browser);
  const position = () => page.textContent('[data-testid=triage-position]');
  const here = () => page.url().match(/\/problems\/(\d+)/)[1];

  // From the problems view sorted by Δ: the second problem's neighbours are the first and third.
  const byDelta = await rest('sort=delta&limit=500');
  await page.goto(`${server.url}/experiments/${SLUG}/problems?runs=${a},${b}&sort=delta`);
  await waitForHydration(page);
  await page.click('[data-testid=problem-row] >> nth=1 >> th a');
  await page.waitForSelector('[data-testid=triage-nav]');
  assert.equal(here(), String(byDelta.problems[1].id));
  assert.equal(await position(), `2 of ${byDelta.total}`);
  await page.click('[data-testid=triage-next]');
  await page.waitForURL(new RegExp(`/problems/${byDelta.problems[2].id}\\?`));
  await page.waitForFunction(() => document.querySelector('[data-testid=triage-position]')?.textContent.startsWith('3 of'));
  await page.click('[data-testid=triage-list]');
  await page.waitForURL(/\/problems\?.*sort=delta/);

  // From a Venn region: the region's problems in the order the page lists them.
  await page.goto(`${server.url}/experiments/${SLUG}/unsolvable`);
  await waitForHydration(page);
  // The region with the most problems.
  const counts = await page.$$eval('[data-testid=region-link]', (as) => as.map((x) => Number(x.textContent.split(':').pop())));
  await page.click(`[data-testid=region-link] >> nth=${counts.indexOf(Math.max(...counts))}`);
  await page.waitForSelector('[data-testid=region-table]');
  const regionKeys = await page.$$eval('[data-testid=region-table] tbody th a', (as) => as.map((x) => x.textContent));
  assert.ok(regionKeys.length >= 2, `${regionKeys.length} problems in the region`);
  {
    await page.click('[data-testid=region-table] tbody th a >> nth=0');
    await page.waitForSelector('[data-testid=triage-nav]');
    assert.equal(await position(), `1 of ${regionKeys.length}`);
    assert.equal(await page.textContent('[data-testid=triage-list]'), 'Unsolvable region');
    assert.match(await page.textContent('[data-testid=triage-next]'), new RegExp(regionKeys[1].replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    await page.click('[data-testid=triage-list]');
    await page.waitForURL(/\/unsolvable\?.*region=/);
  }

  // From the review queue filtered by a reason: only that reason's entries, in queue order.
  await page.goto(`${server.url}/experiments/${SLUG}/review?reason=newly-unsolvable`);
  await waitForHydration(page);
  const queueKeys = await page.$$eval('[data-testid=queue-entry] th a', (as) => as.map((x) => x.textContent));
  assert.ok(queueKeys.length >= 2, `${queueKeys.length} queue entries`);
  await page.click('[data-testid=queue-link] >> nth=1');
  await page.waitForSelector('[data-testid=triage-nav]');
  assert.equal(await position(), `2 of ${queueKeys.length}`);
  assert.equal(await page.textContent('[data-testid=triage-list]'), 'Review queue');
  assert.match(await page.textContent('[data-testid=triage-prev]'), new RegExp(queueKeys[0].replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  await page.click('[data-testid=triage-prev]');
  await page.waitForFunction(() => document.querySelector('[data-testid=triage-position]')?.textContent.startsWith('1 of'));
  await page.click('[data-testid=triage-list]');
  await page.waitForURL(/\/review\?reason=newly-unsolvable/);
  assert.deepEqual(problems, []);
});
