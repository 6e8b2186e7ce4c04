// Access control in a real browser (issue 14): sign in without JavaScript and with it; a viewer
// sees the experiment but no upload or evaluation controls; an editor uploads; sign-out ends the
// session in every tab; single sign-on against the certified `oidc-provider` (tests/oidc).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startServer, launchBrowser, watchedPage, waitForHydration, caplens, freePort } from './harness.mjs';

const PASSWORD = 'a long enough password';
let server, browser, file;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  // Team mode: a site admin, a viewer and an editor of project "team".
  caplens(server, ['user', 'create', 'root', '--admin'], `${PASSWORD}\n`);
  caplens(server, ['user', 'create', 'vera'], `${PASSWORD}\n`);
  caplens(server, ['user', 'create', 'eddie'], `${PASSWORD}\n`);
  caplens(server, ['project', 'create', 'team']);
  caplens(server, ['project', 'add-member', 'team', 'vera', '--role', 'viewer']);
  caplens(server, ['project', 'add-member', 'team', 'eddie', '--role', 'editor']);
  const lines = [];
  for (let p = 0; p < 3; p++) {
    for (let s = 0; s < 4; s++) {
      lines.push(JSON.stringify({ model: 'team-model', dataset: 'team-set', problem_id: String(p), sample: s, correct: (p + s) % 2 === 0, response: `\\boxed{${p}}` }));
    }
  }
  file = join(mkdtempSync(join(tmpdir(), 'caplens-access-')), 'team.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

async function signIn(page, name) {
  await page.goto(`${server.url}/experiments`);
  assert.match(page.url(), /\/login\?next=/, 'an anonymous visitor is sent to the sign-in page');
  await page.fill('input[name=name]', name);
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL(/\/experiments$/), page.click('[data-testid=login-form] button[type=submit]')]);
  await page.waitForSelector('[data-testid=signed-in-as]');
  assert.match(await page.textContent('[data-testid=signed-in-as]'), new RegExp(name));
}

test('sign in without JavaScript, and a wrong password says so', async () => {
  const { page, context } = await watchedPage(browser, { javaScriptEnabled: false, allowHttpErrors: true });
  await page.goto(`${server.url}/experiments`);
  await page.fill('input[name=name]', 'vera');
  await page.fill('input[name=password]', 'not the password');
  await page.click('[data-testid=login-form] button[type=submit]');
  await page.waitForSelector('[data-testid=sign-in-error]');
  assert.match(await page.textContent('[data-testid=sign-in-error]'), /Wrong name or password/);
  await page.fill('input[name=name]', 'vera');
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL(/\/experiments$/), page.click('[data-testid=login-form] button[type=submit]')]);
  assert.match(await page.textContent('[data-testid=signed-in-as]'), /vera/);
  await context.close();
});

test('a viewer sees the experiment but no upload or evaluation controls', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await signIn(page, 'vera');
  await waitForHydration(page);
  // The demo project is open to everyone signed in; experiments say which project they are in,
  // and a project's page lists its experiments.
  await page.goto(`${server.url}/projects/demo`);
  await waitForHydration(page);
  await Promise.all([page.waitForURL(/\/experiments\?project=demo$/), page.click('text=This project\'s experiments')]);
  await page.waitForSelector('[data-testid=project-filter]');
  const badges = await page.locator('[data-testid=experiment-project]').allTextContents();
  assert.ok(badges.length >= 1 && badges.every((b) => b === 'project demo'), JSON.stringify(badges));
  await page.goto(`${server.url}/experiments/demo-rlvr-boundary`);
  await waitForHydration(page);
  assert.ok(await page.isVisible('h1'), 'the experiment page renders');
  const nav = await page.textContent('nav.site-nav');
  assert.ok(!nav.includes('Upload'), `no Upload in the navigation: ${nav}`);
  await page.goto(`${server.url}/evals`);
  await waitForHydration(page);
  await page.waitForSelector('[data-testid=no-eval-rights]');
  assert.equal(await page.$('[data-testid=eval-form]'), null, 'no evaluation form');
  assert.equal(await page.$('[data-testid=dataset-form]'), null, 'no dataset upload form');
  // And the server agrees: a viewer's session cannot upload.
  const status = await page.evaluate(async () => (await fetch('/api/v1/imports?project=team', { method: 'POST', body: '' })).status);
  assert.equal(status, 403);
  // (The refused upload above is the one expected failure.)
  assert.deepEqual(problems.filter((p) => !p.includes('/api/v1/imports') && !p.includes('status of 403')), []);
  await context.close();
});

test('an editor uploads into their project from the browser', async () => {
  const { page, context, problems } = await watchedPage(browser);
  await signIn(page, 'eddie');
  await page.goto(`${server.url}/upload`);
  await waitForHydration(page);
  await page.waitForFunction(() => !document.querySelector('[data-testid=needs-js]'));
  assert.equal(await page.$('[data-testid=create-token]'), null, 'team mode uploads with the session, no token in the browser');
  await page.waitForSelector('[data-testid=project-select]');
  assert.equal(await page.inputValue('[data-testid=project-select]'), 'team');
  await page.setInputFiles('[data-testid=file-input]', file);
  await page.waitForFunction(() => document.querySelector('[data-testid=detected-format]')?.textContent === 'caplens native JSON Lines');
  await page.fill('input[name=experiment]', 'team-exp');
  await page.click('[data-testid=upload-button]');
  await page.waitForSelector('[data-testid=import-result]', { timeout: 60_000 });
  const result = await page.textContent('[data-testid=import-result]');
  assert.match(result, /12 rows read, 12 stored, 0 rejected/, result);
  // The viewer of the project sees what the editor uploaded; the runs are in project "team".
  const rows = await page.evaluate(async () => (await (await fetch('/api/v1/runs')).json()).map((r) => r.model));
  assert.ok(rows.includes('team-model'), JSON.stringify(rows));
  assert.deepEqual(problems, []);
  await context.close();
});

test('sign-out ends the session in every tab', async () => {
  const { page, context } = await watchedPage(browser, { allowHttpErrors: true });
  await signIn(page, 'eddie');
  const other = await context.newPage();
  await other.goto(`${server.url}/runs`);
  await other.waitForSelector('[data-testid=signed-in-as]');
  await Promise.all([page.waitForURL(/\/login\?signed_out=1/), page.click('[data-testid=sign-out]')]);
  await page.waitForSelector('[data-testid=signed-out]');
  await other.reload();
  assert.match(other.url(), /\/login\?(error=expired&)?next=\/runs/, other.url());
  // A data call from the stale tab is refused too.
  const status = await other.evaluate(async () => (await fetch('/api/v1/runs')).status);
  assert.equal(status, 401);
  await context.close();
});

test('single sign-on against a real OpenID provider', async () => {
  const port = await freePort();
  const provider = spawn('node', ['provider.mjs'], {
    cwd: new URL('../oidc', import.meta.url).pathname,
    env: { ...process.env, OIDC_REDIRECT_URIS: `http://127.0.0.1:${port}/auth/oidc/callback` },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  try {
    const line = await new Promise((resolve, reject) => {
      createInterface({ input: provider.stdout }).once('line', resolve);
      provider.once('exit', (c) => reject(new Error(`the provider exited (${c})`)));
    });
    const issuer = line.replace(/^ready /, '');
    const sso = await startServer({
      port,
      args: ['--auth', 'oidc', '--public-url', 'http://127.0.0.1:{port}', '--oidc-issuer', issuer,
        '--oidc-client-id', 'caplens', '--oidc-admin-group', 'caplens-admins', '--no-demo'],
      env: { CAPLENS_OIDC_CLIENT_SECRET: 'caplens-test-secret' },
    });
    try {
      const { page, context } = await watchedPage(browser, { allowHttpErrors: true });
      await page.goto(`${sso.url}/runs`);
      await page.waitForSelector('[data-testid=sso]');
      await page.click('[data-testid=sso]');
      // The provider's own login and consent pages.
      await page.waitForSelector('input[name=login]');
      await page.fill('input[name=login]', 'alice');
      const pw = await page.$('input[name=password]');
      if (pw) await pw.fill('any');
      await page.click('button[type=submit]');
      for (let i = 0; i < 3 && !page.url().startsWith(sso.url); i++) {
        // Consent, when asked.
        const consent = await page.waitForSelector('button[type=submit]', { timeout: 10_000 }).catch(() => null);
        if (!consent || page.url().startsWith(sso.url)) break;
        await Promise.all([page.waitForNavigation(), consent.click()]);
      }
      await page.waitForURL(new RegExp(`^${sso.url}/runs`), { timeout: 30_000 });
      await page.waitForSelector('[data-testid=signed-in-as]');
      assert.match(await page.textContent('[data-testid=signed-in-as]'), /alice/);
      // In the admin group: a site admin.
      assert.match(await page.textContent('nav.site-nav'), /Users/);
      await context.close();
    } finally {
      await sso.stop();
    }
  } finally {
    provider.kill('SIGTERM');
  }
});
