// Verdicts side by side (docs/verdicts.md) in a real browser: a file whose own verdicts disagree
// with caplens' verifier; the pass@k page shows the switch and the disagreement count, the switch
// is a link that changes the numbers and keeps them in the URL (so a colleague opening it sees
// the same), the numbers equal the read API's for the same switch, the runs table shows pass@1
// under both, and the problem page marks the rollouts the two disagree on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launchBrowser, watchedPage, waitForHydration, importFile, sql } from './harness.mjs';

let server, browser, report;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  // 3 problems x 4 samples; reference = problem + 10. p0: the file and the responses agree (all
  // right); p1: the file says wrong, two responses are right; p2: the file says right on two,
  // no response is right.
  const lines = [];
  for (let s = 0; s < 4; s++) {
    const row = (p, correct, answer) => lines.push(JSON.stringify({
      model: 'judge-7b', dataset: 'vset', problem_id: `p${p}`, sample: s, correct,
      reference: String(p + 10), response: `so the answer is \\boxed{${answer}}`,
    }));
    row(0, true, '10');
    row(1, false, s < 2 ? '11' : '3');
    row(2, s % 2 === 0, '99');
  }
  const file = join(mkdtempSync(join(tmpdir(), 'caplens-verdicts-')), 'judged.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  report = importFile(server, file, ['--experiment', 'e2e-verdicts']);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

async function apiPass1(verdicts) {
  const q = verdicts ? `&verdicts=${verdicts}` : '';
  const doc = await (await fetch(`${server.url}/api/v1/experiments/e2e-verdicts/passk?k=1${q}`)).json();
  return doc.models[0].points.find((p) => p.k === 1).pass_at_k;
}

test('the import keeps both verdicts and says how they were graded', () => {
  assert.equal(report.status, 'completed');
  assert.deepEqual(
    [report.verdicts.graded_by_file, report.verdicts.graded_by_caplens, report.verdicts.disagree],
    [12, 12, 4],
  );
});

test('pass@k switches between the file\'s verdicts and caplens\' and keeps the choice in the URL', async () => {
  const { page, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/e2e-verdicts/passk`);
  await waitForHydration(page);
  const sw = page.locator('[data-testid=verdict-switch]');
  await sw.waitFor();
  assert.match(await page.textContent('[data-testid=verdict-disagreements]'), /disagree on 4 of 12 rollouts/);
  const cell = async () => Number(await page.locator('[data-testid=passk-table] tbody tr').first().locator('td').nth(1).textContent());
  // Default: the file's verdicts (p0 4/4, p1 0/4, p2 2/4).
  const byFile = await apiPass1(null);
  assert.ok(Math.abs(byFile - 0.5) < 1e-12, `${byFile}`);
  assert.equal((await cell()).toFixed(2), (byFile * 100).toFixed(2));
  await page.click('[data-verdicts=caplens]');
  await page.waitForURL(/verdicts=caplens/);
  await page.waitForFunction(() => document.querySelector('[data-verdicts=caplens]')?.classList.contains('on'));
  const byCaplens = await apiPass1('caplens');
  assert.ok(Math.abs(byCaplens - 0.5) < 1e-12, `${byCaplens}`); // p0 4/4, p1 2/4, p2 0/4
  // Same mean, other problems: the unsolvable view tells them apart.
  const url = page.url();
  const fresh = await watchedPage(browser);
  await fresh.page.goto(url.replace('/passk', '/unsolvable'));
  await waitForHydration(fresh.page);
  const listed = await fresh.page.locator('[data-testid=verdict-switch] [data-verdicts=caplens]').getAttribute('class');
  assert.match(listed, /\bon\b/, 'the verdict choice travels with the link');
  const unsolvable = await (await fetch(`${server.url}/api/v1/experiments/e2e-verdicts/unsolvable?verdicts=caplens`)).text();
  assert.match(unsolvable, /vset\/p2/);
  assert.doesNotMatch(unsolvable, /vset\/p1/);
  const unsolvableFile = await (await fetch(`${server.url}/api/v1/experiments/e2e-verdicts/unsolvable`)).text();
  assert.match(unsolvableFile, /vset\/p1/);
  assert.deepEqual(problems, []);
  assert.deepEqual(fresh.problems, []);
});

test('the runs table and the problem page show where the two disagree', async () => {
  const { page, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/e2e-verdicts`);
  await waitForHydration(page);
  const summary = await page.textContent('[data-testid=run-verdicts]');
  assert.match(summary, /the file: 50\.0% · caplens: 50\.0% · agree on 66\.7% \(4 differ\)/);
  const [[p1]] = sql(server, "SELECT id FROM problems WHERE problem_key = 'p1'");
  const [[run]] = sql(server, 'SELECT id FROM runs LIMIT 1');
  await page.goto(`${server.url}/problems/${p1}?run=${run}`);
  await waitForHydration(page);
  assert.match(await page.textContent('[data-testid=cn-split]'), /file 0 · caplens 2/);
  const marks = await page.locator('[data-testid=verdict-disagree]').allTextContents();
  assert.equal(marks.length, 2, marks.join(' | '));
  for (const m of marks) assert.match(m, /file ✗ · caplens ✓ \(equal\)/);
  assert.deepEqual(problems, []);
});
