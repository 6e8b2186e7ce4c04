// The experiment page in a real browser: server-rendered content without JavaScript, and
// hydration proven by interactions that only work once the wasm runs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, watchedPage, waitForHydration } from './harness.mjs';

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

test('experiment page is complete and readable with JavaScript disabled', async () => {
  const { page, context, problems } = await watchedPage(browser, { javaScriptEnabled: false });
  const res = await page.goto(`${server.url}/experiments/${SLUG}`);
  assert.equal(res.status(), 200);
  const rows = page.locator('[data-testid=runs-table] tbody tr');
  assert.equal(await rows.count(), 3);
  const models = await rows.locator('td:first-child').allTextContents();
  assert.deepEqual(models, ['demo-base-7b', 'demo-sft-7b', 'demo-rl-7b']);
  assert.match(await page.textContent('.demo-banner'), /Synthetic demo data/);
  // pass@1 cells are filled from stored aggregates: the demo's rl model leads at pass@1.
  const p1 = (await page.locator('[data-testid=pass-at-1]').allTextContents()).map(parseFloat);
  assert.equal(p1.length, 3);
  assert.ok(p1[2] > p1[1] && p1[1] > p1[0], `pass@1 base < sft < rl, got ${p1}`);
  assert.deepEqual(problems, []);
  await context.close();
});

test('every section is readable with JavaScript disabled', async () => {
  const { page, context, problems } = await watchedPage(browser, { javaScriptEnabled: false });
  for (const [path, heading, needle] of [
    ['/', 'Experiments', 'demo-rlvr-boundary'],
    ['/models', 'Models', 'demo-rl-7b'],
    ['/datasets', 'Datasets', 'demo-synthetic-math'],
    ['/runs', 'Runs', 'demo-sft-7b'],
    ['/upload', 'Upload rollouts', 'caplens push'],
  ]) {
    const res = await page.goto(server.url + path);
    assert.equal(res.status(), 200, path);
    assert.equal((await page.textContent('h1')).trim(), heading, path);
    assert.ok((await page.content()).includes(needle), `${path} shows ${needle}`);
  }
  // Without JavaScript the theme switch is a form post that comes back to the same page.
  await page.goto(`${server.url}/models`);
  await page.click('[data-testid=theme-toggle]');
  await page.waitForURL(`${server.url}/models`);
  assert.equal(await page.getAttribute('html', 'data-theme'), 'light');
  assert.deepEqual(problems, []);
  await context.close();
});

test('the run filter works once hydrated (proves the wasm loaded)', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/${SLUG}`);
  await waitForHydration(page);
  const count = page.locator('[data-testid=run-count]');
  assert.equal(await count.textContent(), '3 of 3 runs shown');
  await page.fill('[data-testid=run-filter]', 'sft');
  await page.waitForFunction(() => document.querySelector('[data-testid=run-count]')?.textContent === '1 of 3 runs shown');
  const visible = page.locator('[data-testid=runs-table] tbody tr:not(.hidden) td:first-child');
  assert.deepEqual(await visible.allTextContents(), ['demo-sft-7b']);
  await page.fill('[data-testid=run-filter]', '');
  await page.waitForFunction(() => document.querySelector('[data-testid=run-count]')?.textContent === '3 of 3 runs shown');
  assert.deepEqual(problems, []);
  await context.close();
});

test('theme switch changes the theme in place after hydration', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/models`);
  await waitForHydration(page);
  assert.equal(await page.getAttribute('html', 'data-theme'), 'auto');
  const urlBefore = page.url();
  await page.click('[data-testid=theme-toggle]');
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'light');
  assert.equal(page.url(), urlBefore, 'no navigation: handled by the wasm');
  const cookies = await context.cookies();
  assert.ok(cookies.some((c) => c.name === 'caplens_theme' && c.value === 'light'));
  await page.reload();
  assert.equal(await page.getAttribute('html', 'data-theme'), 'light', 'server renders the stored theme');
  assert.deepEqual(problems, []);
  await context.close();
});

test('client-side navigation reaches every section', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/`);
  await waitForHydration(page);
  await page.click('nav >> text=Models');
  await page.waitForSelector('[data-testid=lineage]');
  const order = await page.locator('.lineage-node strong').allTextContents();
  // The main lineage, then the 12 RL checkpoints of demo-rl-dynamics (children of the sft model).
  assert.deepEqual(order.slice(0, 4), ['demo-base-7b', 'demo-sft-7b', 'demo-rl-7b', 'demo-rl@step0']);
  assert.equal(order.length, 15);
  await page.click('nav >> text=Datasets');
  await page.waitForSelector('[data-testid=datasets-table]');
  await page.click('nav >> text=Runs');
  await page.waitForSelector('[data-testid=all-runs-table]');
  await page.click('nav >> text=Experiments');
  await page.click(`a[href="/experiments/${SLUG}"]`);
  await page.waitForSelector('[data-testid=runs-table]');
  assert.deepEqual(problems, []);
  await context.close();
});

test('unknown pages show the 404 page with status 404', async () => {
  const { page, context } = await watchedPage(browser, { allowHttpErrors: true });
  const res = await page.goto(`${server.url}/definitely/not/here`);
  assert.equal(res.status(), 404);
  assert.match(await page.textContent('[data-testid=not-found]'), /Page not found/);
  await context.close();
});

test('the layout fits a phone screen without horizontal scrolling', async () => {
  const { page, context, problems } = await watchedPage(browser, { viewport: { width: 375, height: 740 } });
  await page.goto(`${server.url}/experiments/${SLUG}`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the phone screen`);
  assert.deepEqual(problems, []);
  await context.close();
});
