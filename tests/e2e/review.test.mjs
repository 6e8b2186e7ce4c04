// Team review in a real browser (issue 15), two browser contexts as two users: Ann comments on a
// token of a rollout and mentions Bob; Bob sees it live and in his inbox, replies and resolves;
// Ann marks an answer cluster correct and the pass@k page of both shows the changed value and
// the override count; a share link opened without an account shows that view and nothing else,
// and after revocation says so.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, watchedPage, waitForHydration as hydrated, caplens } from './harness.mjs';

/** Waits for hydration; on failure says what the page logged. */
const pageProblems = new WeakMap();
async function waitForHydration(page) {
  await hydrated(page).catch((e) => {
    throw new Error(`${e.message}\n${(pageProblems.get(page) || []).join('\n')}`);
  });
}
async function watched(options) {
  const w = await watchedPage(browser, options);
  const logged = [];
  w.page.on('console', (m) => logged.push(`${m.type()}: ${m.text()}`.slice(0, 400)));
  pageProblems.set(w.page, logged);
  return w;
}

const PASSWORD = 'a long enough password';
const SLUG = 'demo-rlvr-boundary';
let server, browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  caplens(server, ['user', 'create', 'ann'], `${PASSWORD}\n`);
  caplens(server, ['user', 'create', 'bob'], `${PASSWORD}\n`);
  caplens(server, ['project', 'add-member', 'demo', 'ann', '--role', 'editor']);
  caplens(server, ['project', 'add-member', 'demo', 'bob', '--role', 'editor']);
  // A project label with a hostile name: it must stay text.
  caplens(server, ['project', 'add-label', 'demo', '<img src=x onerror=window.pwned=2>', '--colour', '#123456']);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

async function signIn(page, name) {
  await page.goto(`${server.url}/login`);
  await page.fill('input[name=name]', name);
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('[data-testid=login-form] button[type=submit]')]);
}

/** The pass@k table's text (the numbers the page shows). */
async function passkTable(page) {
  await page.goto(`${server.url}/experiments/${SLUG}/passk`);
  await waitForHydration(page);
  return page.locator('table').first().textContent();
}

test('two reviewers: a token thread live and in the inbox, an override in both pass@k views, a share link', async () => {
  const a = await watched();
  const b = await watched();
  await signIn(a.page, 'ann');
  await signIn(b.page, 'bob');

  // A traced rollout of problem 3, from the problem page reviewed in the experiment.
  await a.page.goto(`${server.url}/problems/3?experiment=${SLUG}`);
  await waitForHydration(a.page);
  const heatmap = await a.page.getAttribute('[data-testid=heatmap-link] >> nth=0', 'href');
  assert.match(heatmap, new RegExp(`experiment=${SLUG}`));

  // Bob has the rollout open; Ann selects token 20 on the heatmap and comments on it.
  await b.page.goto(`${server.url}${heatmap}`);
  await waitForHydration(b.page);
  await b.page.waitForSelector('[data-testid=rollout-discussion] [data-testid=no-threads]');
  await a.page.goto(`${server.url}${heatmap}`);
  await waitForHydration(a.page);
  await a.page.locator('.heatmap span').nth(20).click();
  await a.page.waitForFunction(() => new URLSearchParams(location.search).get('pos') === '20');
  const form = a.page.locator('[data-testid=rollout-discussion] [data-testid=new-thread-form]');
  await form.locator('button', { hasText: 'Comment on token 20' }).waitFor();
  await form.locator('textarea').fill('This token decides the answer, @bob: $p = \\frac{1}{2}$ <script>window.pwned=1</script>');
  await form.locator('button').click();
  await a.page.waitForSelector('[data-testid=thread][data-target=token] [data-testid=comment-body]');

  // Bob sees it without reloading, rendered (mention, maths) and inert.
  const bobBody = b.page.locator('[data-testid=thread][data-target=token] [data-testid=comment-body]');
  await bobBody.waitFor({ timeout: 20_000 });
  assert.match(await bobBody.textContent(), /This token decides the answer/);
  assert.equal(await bobBody.locator('.mention').textContent(), '@bob');
  assert.equal(await bobBody.locator('math').count(), 1);
  assert.equal(await b.page.evaluate(() => window.pwned), undefined, 'the comment\'s script never ran');
  assert.match(await b.page.textContent('[data-testid=thread][data-target=token] .thread-target'), /token 20 of rollout/);

  // In Bob's inbox as a mention; he replies there and resolves the thread.
  await b.page.goto(`${server.url}/inbox`);
  await waitForHydration(b.page);
  const entry = b.page.locator('[data-testid=inbox-entry][data-why=mention]');
  await entry.waitFor();
  await entry.locator('[data-testid=reply-form] textarea').fill('Agreed, it branches here.');
  await entry.locator('[data-testid=reply-form] button').click();
  await entry.locator('[data-testid=comment]').nth(1).waitFor();
  await entry.locator('[data-testid=thread-resolve]').click();
  await entry.locator('[data-testid=thread-resolved]').waitFor();
  assert.match(await entry.locator('[data-testid=thread-resolved]').textContent(), /resolved by bob/);

  // Ann, still on the rollout, sees the reply and the resolution live.
  await a.page.locator('[data-testid=thread][data-target=token] [data-testid=comment]').nth(1).waitFor({ timeout: 20_000 });
  await a.page.locator('[data-testid=thread][data-target=token] [data-testid=thread-resolved]').waitFor({ timeout: 20_000 });

  // Both see the same pass@k; Ann marks a wrong answer cluster of problem 3 correct.
  const before = await passkTable(b.page);
  assert.equal(await b.page.$('[data-testid=reviewed-switch]'), null, 'no overrides yet: no switch');
  await a.page.goto(`${server.url}/problems/3?experiment=${SLUG}`);
  await waitForHydration(a.page);
  const wrongRow = a.page.locator('[data-testid=override-answer]', { hasText: 'wrong (verifier)' }).first();
  await wrongRow.waitFor();
  // The hostile label is listed as text.
  assert.ok((await a.page.locator('[data-testid=labels]').textContent()).includes('<img src=x onerror=window.pwned=2>'));
  await a.page.fill('[data-testid=override-reason]', 'equivalent to the reference <img src=x onerror=window.pwned=3>');
  await wrongRow.locator('[data-testid=mark-correct]').click();
  await a.page.waitForSelector('[data-testid=overrides] [data-testid=override][data-verdict=correct]');
  assert.match(await a.page.textContent('[data-testid=overrides] .reason'), /<img src=x onerror=window.pwned=3>/);
  assert.equal(await a.page.evaluate(() => window.pwned), undefined, 'hostile labels and reasons stay text');
  // The problem now counts as reviewed in the queue-facing panel, and pass@k changed for both.
  for (const page of [a.page, b.page]) {
    const after = await passkTable(page);
    assert.notEqual(after, before, 'the override changed the pass@k table');
    assert.match(await page.textContent('[data-testid=override-count]'), /^1 verdict override by reviewers changes \d+ rollout verdicts?/);
  }
  // reviewed=0 gives the unreviewed numbers back.
  await b.page.click('[data-testid=reviewed-switch] [data-reviewed="0"]');
  await b.page.waitForURL(/reviewed=0/);
  await b.page.waitForFunction((t) => document.querySelector('table')?.textContent === t, before);

  // A read-only share link of Ann's pass@k view, opened in a fresh context without an account.
  await a.page.goto(`${server.url}/experiments/${SLUG}/passk?band=0`);
  await waitForHydration(a.page);
  await a.page.click('[data-testid=share-open]');
  await a.page.click('[data-testid=share-create]');
  const url = await a.page.locator('[data-testid=share-url]').inputValue();
  assert.match(url, /\/s\/cls_/);
  const guest = await watched({ allowHttpErrors: true });
  await guest.page.goto(url);
  await guest.page.waitForURL(new RegExp(`/experiments/${SLUG}/passk\\?band=0$`));
  await waitForHydration(guest.page);
  assert.match(await guest.page.textContent('[data-testid=override-count]'), /1 verdict override/);
  assert.equal(await guest.page.$('[data-testid=share-open]'), null, 'a guest cannot share further');
  // Issue 27: the visitor is told the view is read-only and is offered no form it cannot use.
  assert.match(await guest.page.textContent('[data-testid=read-only-banner]'), /Read-only shared view/);
  await guest.page.goto(`${server.url}/experiments/${SLUG}/discussion`);
  await waitForHydration(guest.page);
  await guest.page.waitForSelector('[data-testid=threads]');
  assert.equal(await guest.page.$('[data-testid=new-thread-form]'), null, 'no comment form for a visitor');
  // Nothing else: another experiment is not found, the list is empty, the API refuses changes.
  const other = await guest.page.goto(`${server.url}/experiments/demo-rl-dynamics`);
  assert.equal(other.status(), 404);
  const status = await guest.page.evaluate(async (slug) => (await fetch(`/api/v1/experiments/${slug}/comments`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ target: { kind: 'experiment' }, body: 'hi' }),
  })).status, SLUG);
  assert.equal(status, 403);

  // Ann revokes it in the experiment's settings; the guest's next visit says so.
  await a.page.goto(`${server.url}/experiments/${SLUG}/settings`);
  await waitForHydration(a.page);
  const link = a.page.locator('[data-testid=share-link][data-state=active]');
  assert.match(await link.textContent(), /1 time/);
  await link.locator('[data-testid=share-revoke]').click();
  await a.page.waitForSelector('[data-testid=share-link][data-state=revoked]');
  const gone = await guest.page.goto(`${server.url}/experiments/${SLUG}/passk?band=0`);
  assert.equal(gone.status(), 410);
  assert.match(await guest.page.textContent('[data-testid=share-ended]'), /revoked/);
  const again = await guest.page.goto(url);
  assert.equal(again.status(), 410);

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
  await guest.context.close();
});

test('the review queue lists newly unsolvable problems, and reviewing one counts', async () => {
  const { page, context, problems } = await watched();
  await signIn(page, 'ann');
  await page.goto(`${server.url}/experiments/${SLUG}/review`);
  await waitForHydration(page);
  await page.waitForSelector('[data-testid=queue-progress]');
  const progress = await page.textContent('[data-testid=queue-progress]');
  const [, done, total] = progress.match(/(\d+) of (\d+) reviewed/).map(Number);
  assert.ok(total > 0, 'the demo has problems RL lost');
  const entry = page.locator('[data-testid=queue-entry][data-reviewed=false][data-kinds*=newly-unsolvable]').first();
  const href = await entry.locator('th a').getAttribute('href');
  assert.match(href, new RegExp(`experiment=${SLUG}&runs=\\d+(%2C|,)\\d+`));
  await page.goto(`${server.url}${href}`);
  await waitForHydration(page);
  await page.locator('[data-testid=label-box][data-label="real failure"]').check();
  await page.waitForFunction(() => document.querySelector('[data-testid=label-box][data-label="real failure"]')?.checked
    && document.querySelector('[data-testid=labels] .meta')?.textContent.includes('ann'));
  await page.goto(`${server.url}/experiments/${SLUG}/review`);
  await waitForHydration(page);
  await page.waitForFunction((n) => document.querySelector('[data-testid=queue-progress]')?.textContent.startsWith(`${n} of`), done + 1);
  // The project page lists the project's labels (the hostile one as text); only admins may
  // let viewers comment.
  await page.goto(`${server.url}/projects/demo`);
  await waitForHydration(page);
  const labels = page.locator('[data-testid=project-review] [data-testid=project-label]');
  await labels.first().waitFor();
  assert.ok((await labels.allTextContents()).includes('<img src=x onerror=window.pwned=2>'));
  assert.ok(await page.isDisabled('[data-testid=viewers-comment]'), 'an editor cannot change who may comment');
  assert.equal(await page.$('[data-testid=add-label]'), null);
  assert.deepEqual(problems, []);
  await context.close();
});

test('blind judgements by two reviewers, then the agreement page', async () => {
  caplens(server, ['user', 'create', 'cat'], `${PASSWORD}\n`);
  caplens(server, ['user', 'create', 'dan'], `${PASSWORD}\n`);
  caplens(server, ['project', 'add-member', 'demo', 'cat', '--role', 'viewer']);
  caplens(server, ['project', 'add-member', 'demo', 'dan', '--role', 'viewer']);
  caplens(server, ['project', 'viewers-comment', 'demo', 'on']);
  caplens(server, ['project', 'blind-review', 'demo', 'on']);
  const judge = async (name, verdict) => {
    const w = await watched();
    await signIn(w.page, name);
    await w.page.goto(`${server.url}/problems/5?experiment=${SLUG}`);
    await waitForHydration(w.page);
    const row = w.page.locator('[data-testid=override-answer]').first();
    await row.waitFor();
    // Blind: nobody else's judgement is shown to a viewer.
    assert.equal(await row.locator('[data-testid=other-judgements]').count(), 0, `${name} sees no other judgement`);
    await row.locator(`[data-testid=judge-${verdict}]`).click();
    await w.page.waitForFunction((v) => document.querySelector('[data-testid=override-answer] [data-testid=my-judgement]')?.textContent === `you: ${v}`, verdict);
    assert.equal(await row.locator('[data-testid=other-judgements]').count(), 0);
    assert.deepEqual(w.problems, []);
    await w.context.close();
  };
  await judge('cat', 'correct');
  await judge('dan', 'wrong');
  // An editor sees the agreement: one item, split, with who said what.
  const a = await watched();
  await signIn(a.page, 'ann');
  await a.page.goto(`${server.url}/experiments/${SLUG}/agreement`);
  await waitForHydration(a.page);
  const doc = await a.page.evaluate(async (slug) => (await fetch(`/api/v1/experiments/${slug}/agreement`)).json(), SLUG);
  assert.equal(doc.pairs.length, 1);
  assert.deepEqual(doc.pairs[0].reviewers, ['cat', 'dan']);
  const shown = (await a.page.textContent('[data-testid=pair-kappa]')).trim();
  assert.equal(shown, doc.pairs[0].kappa === null ? '—' : doc.pairs[0].kappa.toFixed(3));
  assert.equal((await a.page.textContent('[data-testid=fleiss-kappa]')).trim(), doc.fleiss_kappa === null ? '—' : doc.fleiss_kappa.toFixed(3));
  const disagreement = await a.page.textContent('[data-testid=disagreement]');
  assert.match(disagreement, /cat: correct/);
  assert.match(disagreement, /dan: wrong/);
  // The queue lists it as "reviewers disagree".
  await a.page.goto(`${server.url}/experiments/${SLUG}/review?reason=reviewers-disagree`);
  await waitForHydration(a.page);
  await a.page.waitForSelector('[data-testid=queue-entry][data-kinds~=reviewers-disagree]');
  assert.deepEqual(a.problems, []);
  await a.context.close();
});
