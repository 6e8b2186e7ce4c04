// The RFT data & advantage-shaping page in a real browser, opened from permalinks: the
// selection shown equals the JSON Lines download (count, order, preview page), changing the
// strategy changes both; the group's advantages equal eq. 10 / eq. 12 recomputed here from the
// table's own rewards and token counts; editing a shaping parameter (a GET form) changes the URL
// and the numbers, with and without JavaScript; PPL shaping (eqs. 7, 11) on an uploaded run with
// token logprobs; hostile response text shows as text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, watchedPage, waitForHydration } from './harness.mjs';

const SLUG = 'demo-rlvr-boundary';
const HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> so x = 12 and \\boxed{12} </math><script>window.__pwned = 3</script>';
// One problem, four rollouts with token logprobs (the import stores their perplexity).
const UPLOAD = [
  { correct: true, lps: [-0.1, -0.3, -0.2, -0.05, -0.4] },
  { correct: false, lps: [-1.2, -0.8, -2.0] },
  { correct: true, lps: [-0.6, -0.7, -0.5, -0.9] },
  { correct: false, lps: [-0.2, -0.1, -3.5, -0.3, -0.2, -0.6] },
];
let server, browser, runIds;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const exp = await (await fetch(`${server.url}/api/v1/experiments/${SLUG}`)).json();
  runIds = exp.runs.map((r) => r.id);
  // A token from the Tokens page, then an upload of the logprob file.
  const { page, context } = await watchedPage(browser);
  await page.goto(`${server.url}/tokens`);
  await waitForHydration(page);
  await page.fill('[data-testid=token-name]', 'rft-e2e');
  await page.click('[data-testid=token-create]');
  await page.waitForSelector('[data-testid=token-secret]');
  const secret = (await page.textContent('[data-testid=token-secret] code')).trim();
  await context.close();
  const body = UPLOAD.map(({ correct, lps }, i) => JSON.stringify({
    model: 'rft-e2e-model', dataset: 'rftset', problem_id: 'p1', sample: i, correct, reference: '12',
    response: i === 0 ? HOSTILE : `we get ${i} so \\boxed{${correct ? 12 : i}}`,
    tokens: lps.map((_, t) => `t${t}`), token_logprobs: lps,
  })).join('\n') + '\n';
  const res = await fetch(`${server.url}/api/v1/imports?experiment=rft-e2e&filename=rft.jsonl`, {
    method: 'POST', headers: { Authorization: `Bearer ${secret}` }, body,
  });
  assert.equal(res.status, 202);
  const { status_url: statusUrl } = await res.json();
  for (let i = 0; ; i++) {
    const report = await (await fetch(new URL(statusUrl, server.url))).json();
    if (report.status === 'completed') break;
    assert.ok(report.status === 'processing' || report.status === 'queued', JSON.stringify(report));
    assert.ok(i < 300, 'import finished');
    await new Promise((r) => setTimeout(r, 100));
  }
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const tableRows = (page, testid) =>
  page.$$eval(`[data-testid=${testid}] tbody tr`, (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent.trim())));
const countsOf = async (page) => Object.fromEntries((await tableRows(page, 'rft-counts')).map(([k, v]) => [k, Number(v)]));
const sigmoid = (x) => 1 / (1 + Math.exp(-x));
const close = (shown, want, what) => assert.ok(Math.abs(Number(shown) - want) < 1.5e-4, `${what}: shown ${shown}, expected ${want.toFixed(6)}`);

// Eq. 10 with the sample standard deviation, from the table's own correct column.
function grpo(rows) {
  const r = rows.map((row) => (row[1] === 'yes' ? 1 : 0));
  const mean = r.reduce((a, b) => a + b, 0) / r.length;
  const std = Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / (r.length - 1));
  return r.map((x) => (std === 0 ? 0 : (x - mean) / std));
}
// Eq. 12 at token t of a response of len tokens.
const shaped = (a, t, len, { gamma, d, m, n }) => (a === 0 ? 0 : a + Math.sign(a) * gamma * sigmoid(d * m * ((t + 0.5) / len - n)));

function checkGroup(rows, params) {
  const adv = grpo(rows);
  rows.forEach((row, i) => {
    close(row[5], adv[i], `A_${row[0]}`);
    const len = Number(row[2]);
    close(row[7], shaped(adv[i], 0, len, params), `first token of ${row[0]}`);
    close(row[8], shaped(adv[i], len - 1, len, params), `last token of ${row[0]}`);
  });
  return adv;
}

async function downloadLines(page) {
  const href = await page.getAttribute('[data-testid=rft-download]', 'href');
  const res = await fetch(server.url + href);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/jsonl/);
  return { href, lines: (await res.text()).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

test('selection from a permalink equals the JSON Lines download; the strategy changes both', async () => {
  const { page, context, problems } = await watchedPage(browser);
  const sft = runIds[1];
  await page.goto(`${server.url}/experiments/${SLUG}/rft?run=${sft}&count=40&seed=3&page=2`);
  await waitForHydration(page);
  let counts = await countsOf(page);
  assert.equal(counts['selected: total'], 40);
  assert.equal(counts['selected: incorrect'], 0, 'rule: correct rollouts only');
  assert.equal(counts['rollouts in the run'], counts['dropped: no response text'] + counts['dropped: no \\boxed{…} with balanced braces (filter 1)']
    + counts['dropped: no digit up to the first box (filter 3)'] + counts['dropped: 3-gram redundancy > 0.31 (filter 4)']
    + counts['kept: correct'] + counts['kept: incorrect']);
  assert.match(await page.textContent('[data-testid=rft-selected]'), /^40 rollouts selected \(40 correct, 0 incorrect\)/);
  let { href, lines } = await downloadLines(page);
  assert.match(href, new RegExp(`run=${sft}&strategy=rule&count=40&seed=3`));
  assert.equal(lines.length, 40);
  // Page 2 of the preview: the 21st to 40th lines of the download, in order.
  const heads = await page.locator('[data-testid=rft-preview-head]').allTextContents();
  assert.equal(heads.length, 20);
  heads.forEach((h, i) => {
    const l = lines[20 + i];
    assert.ok(h.startsWith(`#${21 + i} · ${l.dataset}/${l.problem_id} · sample ${l.sample} · correct`), `${h} vs ${JSON.stringify(l).slice(0, 120)}`);
  });
  assert.match(await page.textContent('[data-testid=rft-pages]'), /page 2 of 2/);
  // Change the strategy: 5 % of 40 are incorrect rollouts, in the counts and in the download.
  await page.click('[data-testid=rft-strategies] [data-strategy=noisy]');
  await page.waitForURL(/strategy=noisy/);
  await page.waitForFunction(() => document.querySelector('[data-testid=rft-selected]')?.textContent.startsWith('40 rollouts selected (38 correct, 2 incorrect)'));
  assert.doesNotMatch(page.url(), /page=/, 'a new selection starts at page 1');
  counts = await countsOf(page);
  assert.equal(counts['selected: incorrect'], 2);
  ({ href, lines } = await downloadLines(page));
  assert.match(href, /strategy=noisy/);
  assert.equal(lines.length, 40);
  assert.equal(lines.filter((l) => !l.correct).length, 2);
  assert.ok(lines.every((l) => l.strategy === 'noisy' && l.response.includes('\\boxed{') && l.response.endsWith('}')), 'responses end at their first box');
  // Entropy needs token data the demo does not have: said plainly.
  await page.click('[data-testid=rft-strategies] [data-strategy=entropy]');
  await page.waitForSelector('[data-testid=rft-selection-error]');
  assert.match(await page.textContent('[data-testid=rft-selection-error]'), /entropy/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('group advantages follow eqs. 10 and 12; editing n in the form changes the URL and the numbers', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/experiments/${SLUG}/rft?run=${runIds[2]}&gamma=0.2`);
  await waitForHydration(page);
  let rows = await tableRows(page, 'rft-group-table');
  assert.ok(rows.length > 1);
  const correct = rows.filter((r) => r[1] === 'yes').length;
  assert.ok(correct > 0 && correct < rows.length, 'default problem has mixed rewards');
  checkGroup(rows, { gamma: 0.2, d: 1, m: 15, n: -0.5 });
  assert.match(await page.textContent('[data-testid=rft-ppl-note]'), /no perplexity/);
  assert.match(await page.textContent('[data-testid=rft-bonus-note]'), /nearly constant/);
  // The n parameter, edited in the form.
  assert.equal(await page.inputValue('[data-testid=param-n]'), '-0.5');
  await page.fill('[data-testid=param-n]', '0.5');
  await page.click('[data-testid=rft-apply]');
  await page.waitForURL(/n=0\.5/);
  assert.match(page.url(), /gamma=0\.2/, 'the rest of the state is kept');
  await page.waitForFunction(() => /b\(0\) = 0\.0001/.test(document.querySelector('[data-testid=rft-bonus-note]')?.textContent));
  rows = await tableRows(page, 'rft-group-table');
  const params = { gamma: 0.2, d: 1, m: 15, n: 0.5 };
  const adv = checkGroup(rows, params);
  // The bonus table is eq. 8 with the new n; the per-token table of the charted rollout is eq. 12.
  for (const [l, b] of await tableRows(page, 'rft-bonus-table')) close(b, 0.2 * sigmoid(15 * (Number(l) - 0.5)), `b(${l})`);
  const charted = rows.findIndex((r) => r[1] === 'yes');
  const len = Number(rows[charted][2]);
  for (const [t, l, b, a, shapedA] of await tableRows(page, 'rft-token-table')) {
    close(l, (Number(t) + 0.5) / len, `l_${t}`);
    close(b, 0.2 * sigmoid(15 * (Number(l) - 0.5)), `b_${t}`);
    close(a, adv[charted], 'A_i');
    close(shapedA, shaped(adv[charted], Number(t), len, params), `A'_${t}`);
  }
  // Another rollout's per-token view, from its row link.
  await page.click(`[data-testid=rft-sample-link] >> text="${rows[rows.length - 1][0]}"`);
  await page.waitForURL(new RegExp(`sample=${rows[rows.length - 1][0]}`));
  await page.waitForFunction((s) => document.querySelector('[data-testid=rft-token-chart] figcaption') && document.querySelector('[data-testid=rft-token-chart]')?.textContent.includes(`sample ${s},`), rows[rows.length - 1][0]);
  const svg = await fetch(server.url + await page.getAttribute('[data-testid=rft-bonus-chart] [data-testid=export-svg]', 'href'));
  assert.equal(svg.status, 200);
  assert.deepEqual(problems, []);
  await context.close();
});

test('without JavaScript the shaping form still works (a GET form)', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`${server.url}/experiments/${SLUG}/rft?run=${runIds[0]}`);
  await page.fill('[data-testid=param-gamma]', '0.3');
  await page.fill('[data-testid=param-n]', '0.5');
  await Promise.all([page.waitForURL(/gamma=0\.3/), page.click('[data-testid=rft-apply]')]);
  const rows = await tableRows(page, 'rft-group-table');
  checkGroup(rows, { gamma: 0.3, d: 1, m: 15, n: 0.5 });
  const half = (await tableRows(page, 'rft-bonus-table')).find((r) => r[0] === '0.5');
  assert.equal(half[1], '0.15000');
  await context.close();
});

test('PPL shaping on an uploaded run with logprobs; hostile responses are text', async () => {
  const { page, context, problems } = await watchedPage(browser);
  let dialogs = 0;
  page.on('dialog', (d) => { dialogs++; d.dismiss(); });
  await page.goto(`${server.url}/experiments/rft-e2e/rft?count=10&alpha=0.5`);
  await waitForHydration(page);
  assert.match(await page.textContent('[data-testid=rft-run-meta]'), /4 rollouts; .* perplexity on 4/);
  const rows = await tableRows(page, 'rft-group-table');
  assert.equal(rows.length, 4);
  // Eq. 7 weights and eq. 11 advantages from the logprobs we uploaded.
  const lnPpl = UPLOAD.map(({ lps }) => -lps.reduce((a, b) => a + b, 0) / lps.length);
  const mu = lnPpl.reduce((a, b) => a + b, 0) / 4;
  const sigma = Math.sqrt(lnPpl.reduce((a, b) => a + (b - mu) ** 2, 0) / 3);
  const adv = grpo(rows);
  rows.forEach((row, i) => {
    close(row[3], Math.exp(lnPpl[i]), `PPL ${i}`);
    const w = (lnPpl[i] - mu) / sigma;
    close(row[4], w, `w_${i}`);
    close(row[6], adv[i] * (1 - 0.5 * w), `A'_${i}`);
  });
  assert.equal(await page.locator('[data-testid=rft-ppl-note]').count(), 0);
  // The hostile rollout is selected and previewed as text, cut after its first box.
  assert.match(await page.textContent('[data-testid=rft-selected]'), /^2 rollouts selected/);
  await page.click('[data-testid=rft-preview-head] >> nth=0');
  const text = await page.textContent('[data-testid=rft-preview-text] >> nth=0');
  assert.equal(text, HOSTILE.slice(0, HOSTILE.indexOf('\\boxed{12}') + '\\boxed{12}'.length));
  assert.equal(await page.locator('img[src=x]').count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(dialogs, 0);
  const { lines } = await downloadLines(page);
  assert.equal(lines.length, 2);
  assert.equal(lines[0].response, text, 'the download carries the same text as JSON');
  assert.deepEqual(problems, []);
  await context.close();
});
