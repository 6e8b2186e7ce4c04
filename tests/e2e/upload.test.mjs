// Upload in a real browser: create a token for this browser, drop a file, see the detected
// format and the prefilled form, upload with progress, follow processing to the result, and
// open the new experiment. Also the Tokens page (secret shown once, revoke).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launchBrowser, watchedPage, waitForHydration, DATABASES } from './harness.mjs';

// The whole flow on each database: on PostgreSQL the upload goes through the COPY path.
for (const database of DATABASES) describe(`on ${database}`, () => {
  let server, browser, file;

  before(async () => {
    server = await startServer({ database });
    browser = await launchBrowser();
    // Two models, 4 problems, 6 samples each, with a hostile response.
    const lines = [];
    for (const model of ['upload-base', 'upload-rl']) {
      for (let p = 0; p < 4; p++) {
        for (let s = 0; s < 6; s++) {
          const correct = (p + s + (model === 'upload-rl' ? 2 : 0)) % 3 === 0;
          const response = p === 0 && s === 0 ? '<script>window.__pwned = 1</script> \\boxed{1}' : `so \\boxed{${correct ? p : 99}}`;
          lines.push(JSON.stringify({ model, dataset: 'e2e-set', problem_id: String(p), sample: s, correct, response }));
        }
      }
    }
    file = join(mkdtempSync(join(tmpdir(), 'caplens-upload-')), 'rollouts.jsonl');
    writeFileSync(file, lines.join('\n') + '\n');
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('upload a file from the browser and open the new runs', async () => {
    const { page, context, problems } = await watchedPage(browser);
    await page.goto(`${server.url}/upload`);
    await waitForHydration(page);
    await page.waitForFunction(() => !document.querySelector('[data-testid=needs-js]'));
    // The CI line names this server once hydrated.
    assert.match(await page.textContent('[data-testid=curl-line]'), new RegExp(`${server.url}/api/v1/imports\\?`));
    await page.click('[data-testid=create-token]');
    await page.waitForFunction(() => document.querySelector('[data-testid=token-state]')?.textContent.includes('uploads with token clk_'));
    await page.setInputFiles('[data-testid=file-input]', file);
    await page.waitForFunction(() => document.querySelector('[data-testid=detected-format]')?.textContent === 'caplens native JSON Lines');
    // The form is prefilled from the file: one dataset.
    assert.equal(await page.inputValue('input[name=dataset]'), 'e2e-set');
    await page.fill('input[name=experiment]', 'from-the-browser');
    await page.click('[data-testid=upload-button]');
    await page.waitForSelector('[data-testid=import-result]', { timeout: 60_000 });
    const result = await page.textContent('[data-testid=import-result]');
    assert.match(result, /Imported/);
    assert.match(result, /48 rows read, 48 stored, 0 rejected/);
    assert.match(result, /upload-base on e2e-set/);
    // The recent imports list shows it, and the experiment opens with both runs.
    await page.waitForFunction(() => document.querySelector('[data-testid=imports-table]')?.textContent.includes('from-the-browser'));
    await page.click('[data-testid=experiment-link]');
    await page.waitForURL(`${server.url}/experiments/from-the-browser`);
    const models = await page.locator('[data-testid=runs-table] tbody tr td:first-child').allTextContents();
    assert.deepEqual(models.sort(), ['upload-base', 'upload-rl']);
    assert.equal(await page.evaluate(() => window.__pwned), undefined, 'response text never runs as script');
    // The same file again is a duplicate, said plainly.
    await page.goto(`${server.url}/upload`);
    await waitForHydration(page);
    await page.setInputFiles('[data-testid=file-input]', file);
    await page.fill('input[name=experiment]', 'from-the-browser');
    await page.waitForFunction(() => !document.querySelector('[data-testid=upload-button]').disabled);
    await page.click('[data-testid=upload-button]');
    await page.waitForSelector('[data-testid=import-result]', { timeout: 60_000 });
    assert.match(await page.textContent('[data-testid=import-result]'), /Already imported[\s\S]*nothing was added/);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('tokens page shows a new secret once and revokes tokens', async () => {
    const { page, context, problems } = await watchedPage(browser);
    await page.goto(`${server.url}/tokens`);
    await waitForHydration(page);
    await page.fill('[data-testid=token-name]', 'ci-e2e');
    await page.click('[data-testid=token-create]');
    await page.waitForSelector('[data-testid=token-secret]');
    const secret = (await page.textContent('[data-testid=token-secret] code')).trim();
    assert.match(secret, /^clk_[0-9a-f]{64}$/);
    await page.waitForFunction(() => document.querySelector('[data-testid=tokens-table]')?.textContent.includes('ci-e2e'));
    // The secret works for the API...
    let res = await fetch(`${server.url}/api/v1/imports`, { method: 'POST', headers: { Authorization: `Bearer ${secret}` }, body: '' });
    assert.equal(res.status, 400, 'authenticated; an empty body is a bad request');
    // ...until revoked.
    const row = page.locator('[data-testid=tokens-table] tr', { hasText: 'ci-e2e' });
    await row.locator('button', { hasText: 'Revoke' }).click();
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=tokens-table] tr')].some((r) => r.textContent.includes('ci-e2e') && r.textContent.includes('revoked')));
    res = await fetch(`${server.url}/api/v1/imports`, { method: 'POST', headers: { Authorization: `Bearer ${secret}` }, body: '' });
    assert.equal(res.status, 401);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('the upload page explains itself without JavaScript', async () => {
    const { page, context } = await watchedPage(browser, { javaScriptEnabled: false });
    const res = await page.goto(`${server.url}/upload`);
    assert.equal(res.status(), 200);
    assert.match(await page.textContent('[data-testid=needs-js]'), /needs JavaScript/);
    assert.match(await page.textContent('[data-testid=curl-line]'), /--data-binary @results\.jsonl/);
    await context.close();
  });
});
