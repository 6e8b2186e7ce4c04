// Regenerates the README screenshots: node tests/e2e/screenshots.mjs (after scripts/build.sh).
import { mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { startServer, launchBrowser, waitForHydration, BIN, sql } from './harness.mjs';

const OUT = new URL('../../docs/screenshots/', import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });
const server = await startServer();
const browser = await launchBrowser();
try {
  const shots = [
    { name: 'experiment', path: '/experiments/demo-rlvr-boundary', theme: 'light', viewport: { width: 1280, height: 720 } },
    { name: 'models-dark', path: '/models', theme: 'dark', viewport: { width: 1280, height: 720 } },
    { name: 'passk', path: '/experiments/demo-rlvr-boundary/passk', theme: 'light', viewport: { width: 1280, height: 900 } },
    { name: 'unsolvable', path: '/experiments/demo-rlvr-boundary/unsolvable?region=RL', theme: 'light', viewport: { width: 1280, height: 1100 } },
    { name: 'compare-dark', path: '/experiments/demo-rlvr-boundary/compare', theme: 'dark', viewport: { width: 1280, height: 1200 } },
    { name: 'token-stats', path: '/experiments/demo-rlvr-boundary/token-stats', theme: 'light', viewport: { width: 1280, height: 1000 } },
    { name: 'dynamics', path: '/experiments/demo-rl-dynamics/dynamics', theme: 'light', viewport: { width: 1280, height: 1100 } },
    { name: 'problem', path: '/problems/3', theme: 'light', viewport: { width: 1280, height: 1000 } },
    { name: 'rollout-heatmap', path: 'HEATMAP', theme: 'dark', viewport: { width: 1280, height: 900 } },
    { name: 'experiment-phone', path: '/experiments/demo-rlvr-boundary', theme: 'light', viewport: { width: 390, height: 844 } },
    { name: 'evals', path: '/evals', theme: 'light', viewport: { width: 1280, height: 1100 } },
    { name: 'eval-progress', path: 'EVAL', theme: 'light', viewport: { width: 1280, height: 1000 } },
    { name: 'review-queue', path: '/experiments/demo-rlvr-boundary/review', theme: 'light', viewport: { width: 1280, height: 900 } },
    { name: 'token-thread', path: 'THREAD', theme: 'light', viewport: { width: 1280, height: 1200 }, scrollTo: '[data-testid=rollout-discussion]' },
    { name: 'passk-reviewed', path: '/experiments/demo-rlvr-boundary/passk', theme: 'light', viewport: { width: 1280, height: 1000 } },
    { name: 'problems', path: '/experiments/demo-rlvr-boundary/problems?sort=delta&change=regressed', theme: 'light', viewport: { width: 1440, height: 1000 } },
    { name: 'problems-phone', path: '/experiments/demo-rlvr-boundary/problems?sort=delta', theme: 'dark', viewport: { width: 390, height: 844 } },
    { name: 'agreement', path: '/experiments/demo-rlvr-boundary/agreement', theme: 'light', viewport: { width: 1280, height: 900 } },
    { name: 'glossary', path: '/glossary#token-entropy-item-4-eq-3', theme: 'light', viewport: { width: 1440, height: 900 } },
    { name: 'problem-phone', path: '/problems/3?experiment=demo-rlvr-boundary', theme: 'light', viewport: { width: 390, height: 844 } },
    { name: 'glossary-phone', path: '/glossary', theme: 'dark', viewport: { width: 390, height: 844 } },
    { name: 'dataset', path: '/datasets/1?q=integer', theme: 'light', viewport: { width: 1440, height: 900 } },
    { name: 'token-stats-dark', path: '/experiments/demo-rlvr-boundary/token-stats', theme: 'dark', viewport: { width: 1440, height: 1300 } },
  ];
  // SHOTS=name,name regenerates only those.
  const only = process.env.SHOTS ? process.env.SHOTS.split(',') : null;
  const wanted = (name) => !only || only.includes(name);
  // An evaluation of the embedded model, photographed while it runs.
  if (wanted('eval-progress')) {
    const token = execFileSync(BIN, ['token', 'create', 'screenshots', '--data-dir', server.dataDir],
      { env: { ...process.env, DATABASE_URL: '', CAPLENS_LOG: 'warn' } }).toString().trim().split(/\s+/).pop();
    const res = await fetch(`${server.url}/api/v1/evals`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ limit: 16, n: 16, max_tokens: 48, experiment: 'first-evaluation' }),
    });
    const id = (await res.json()).evaluations[0].id;
    for (;;) {
      const v = await (await fetch(`${server.url}/api/v1/evals/${id}`)).json();
      if (v.samples_done >= v.samples_total / 3 || v.status !== 'running' && v.status !== 'queued') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    for (const s of shots) if (s.path === 'EVAL') s.path = `/evals/${id}`;
  }
  // The unsolvable shot selects the rl-only region (run ids come from the API).
  const exp = await (await fetch(`${server.url}/api/v1/experiments/demo-rlvr-boundary`)).json();
  const rl = exp.runs.find((r) => r.stage === 'rl');
  for (const s of shots) s.path = s.path.replace('region=RL', `region=${rl?.id ?? ''}`);
  // The heatmap shot opens the first traced rollout the problem page links to.
  {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/problems/3`);
    const href = await page.getAttribute('[data-testid=heatmap-link] >> nth=0', 'href');
    for (const s of shots) if (s.path === 'HEATMAP') s.path = `${href}?pos=20`;
    await context.close();
  }
  // Team review: a thread on a token of that rollout, and a verdict override on problem 3 (over
  // the REST API, as a script would).
  {
    const token = execFileSync(BIN, ['token', 'create', 'review-shots', '--data-dir', server.dataDir],
      { env: { ...process.env, DATABASE_URL: '', CAPLENS_LOG: 'warn' } }).toString().trim().split(/\s+/).pop();
    const post = (path, body) => fetch(`${server.url}${path}`, {
      method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    const heat = shots.find((s) => s.name === 'rollout-heatmap').path;
    const rollout = Number(heat.match(/rollouts\/(\d+)/)[1]);
    await post('/api/v1/experiments/demo-rlvr-boundary/comments', { target: { kind: 'token', rollout, index: 20 },
      body: 'The entropy spikes here: the model chooses between **two methods**. After this token the $\\frac{a}{b}$ form wins.' });
    const threads = await (await fetch(`${server.url}/api/v1/experiments/demo-rlvr-boundary/comments`)).json();
    await fetch(`${server.url}/api/v1/threads/${threads.threads[0].id}/comments`, {
      method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ body: 'Agreed; intervening on it (swap to the runner-up) drops accuracy by half.' }),
    });
    await post('/api/v1/experiments/demo-rlvr-boundary/overrides', { problem: 'demo-synthetic-math/demo-003', answer: '428',
      verdict: 'correct', reason: 'screenshot: an example override' });
    for (const s of shots) if (s.path === 'THREAD') s.path = `${heat.replace(/\?.*/, '')}?experiment=demo-rlvr-boundary&pos=20`;
  }
  // Three reviewers' judgements on eight answers of the demo (as the judgements API records
  // them), for the agreement page.
  if (wanted('agreement')) {
    const [{ id: experiment }] = sql(server, 'SELECT id FROM experiments WHERE slug = ?', ['demo-rlvr-boundary']).map(([id]) => ({ id }));
    const problems = sql(server, 'SELECT DISTINCT problem_id FROM run_problem_stats ORDER BY problem_id LIMIT 8').map(([id]) => id);
    const says = { ann: [1, 1, 0, 0, 1, 0, 1, 1], bob: [1, 0, 0, 0, 1, 0, 1, 1], cat: [1, 1, 0, 1, 1, 0, 0, 1] };
    for (const [reviewer, verdicts] of Object.entries(says)) {
      problems.forEach((problem, i) => sql(server,
        "INSERT INTO judgements (experiment_id, problem_id, answer, reviewer, verdict, created_at) VALUES (?, ?, ?, ?, ?, '2026-12-07T12:00:00Z')",
        [experiment, problem, String(40 + i), reviewer, verdicts[i]]));
    }
  }
  for (const s of shots.filter((s) => wanted(s.name))) {
    const context = await browser.newContext({ viewport: s.viewport, deviceScaleFactor: 1 });
    await context.addCookies([{ name: 'caplens_theme', value: s.theme, url: server.url }]);
    const page = await context.newPage();
    await page.goto(server.url + s.path);
    await waitForHydration(page);
    if (s.scrollTo) {
      await page.locator(`${s.scrollTo} [data-testid=thread]`).first().waitFor();
      await page.locator(s.scrollTo).scrollIntoViewIfNeeded();
    }
    await page.screenshot({ path: `${OUT}${s.name}.png` });
    await context.close();
    console.log(`wrote docs/screenshots/${s.name}.png`);
  }
} finally {
  await browser.close();
  await server.stop();
}
