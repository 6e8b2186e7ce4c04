// Shared set-up for the browser tests: start a real `caplens serve` on a free port with a fresh
// SQLite data directory or PostgreSQL schema (the demo loads on first start), and launch
// Debian's Chromium.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { chromium } from 'playwright-core';

const ROOT = new URL('../..', import.meta.url).pathname;
const TARGET = process.env.CARGO_TARGET_DIR || join(ROOT, 'target');
export const BIN = process.env.CAPLENS_BIN || join(TARGET, 'debug', 'caplens');
export const SITE = process.env.CAPLENS_SITE_ROOT || join(TARGET, 'site');

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

// The databases a browser test can run against: SQLite always, PostgreSQL when the test
// command gives one (CAPLENS_TEST_POSTGRES_URL).
export const DATABASES = ['sqlite', ...(process.env.CAPLENS_TEST_POSTGRES_URL ? ['postgres'] : [])];

// A fresh PostgreSQL schema for one server (psql, as the test command's PostgreSQL has trust
// auth); returns its DATABASE_URL and how to drop it.
function postgresSchema() {
  const base = process.env.CAPLENS_TEST_POSTGRES_URL;
  const schema = `caplens_e2e_${process.pid}_${Date.now()}`;
  execFileSync('psql', [base, '-qc', `CREATE SCHEMA ${schema}`]);
  const sep = base.includes('?') ? '&' : '?';
  return {
    url: `${base}${sep}options=-c%20search_path%3D${schema}`,
    drop: () => execFileSync('psql', [base, '-qc', `DROP SCHEMA IF EXISTS ${schema} CASCADE`]),
  };
}

// `options.args`: extra `caplens serve` arguments (they may use `{port}`); `options.env`: extra
// environment; `options.port`: a port chosen beforehand; `options.database`: 'sqlite' (default,
// a file in the data directory) or 'postgres' (a fresh schema, dropped by stop()).
export async function startServer(options = {}) {
  const port = options.port || await freePort();
  const dataDir = options.dataDir || mkdtempSync(join(tmpdir(), 'caplens-e2e-'));
  const extra = (options.args || []).map((a) => a.replaceAll('{port}', String(port)));
  const pg = options.database === 'postgres' ? postgresSchema() : null;
  const proc = spawn(BIN, ['serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, '--site-root', SITE, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DATABASE_URL: pg ? pg.url : '', CAPLENS_LOG: 'warn', ...(options.env || {}) },
  });
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`caplens exited early (${proc.exitCode}):\n${log}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`caplens did not become healthy:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    dataDir,
    log: () => log,
    database: pg ? 'postgres' : 'sqlite',
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dataDir, { recursive: true, force: true });
      pg?.drop();
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A page that records console errors, uncaught exceptions and HTTP errors, so a test can fail
// on any of them.
export async function watchedPage(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 400 && !options.allowHttpErrors) problems.push(`HTTP ${r.status()} ${r.url()}`); });
  return { page, context, problems };
}

// Resolves once the wasm has hydrated the page (the app marks <html data-hydrated>).
export async function waitForHydration(page) {
  await page.waitForFunction(() => document.documentElement.dataset.hydrated === 'true', null, { timeout: 30_000 });
}

// Imports a file into a running test server's database with `caplens import` (SQLite allows a
// second process), and returns the import's report.
export function importFile(server, file, args = []) {
  const out = execFileSync(BIN, ['import', '--data-dir', server.dataDir, '--json', ...args, file], {
    env: { ...process.env, DATABASE_URL: '', CAPLENS_LOG: 'warn' },
  });
  return JSON.parse(out.toString());
}

// One SQL statement against a test server's SQLite database (through python3's sqlite3),
// committed; its rows.
export function sql(server, query, params = []) {
  const script = 'import json,sqlite3,sys; c=sqlite3.connect(sys.argv[1]); '
    + 'r=c.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall(); c.commit(); print(json.dumps(r))';
  const out = execFileSync('python3', ['-c', script, join(server.dataDir, 'caplens.db'), query, JSON.stringify(params)]);
  return JSON.parse(out.toString());
}

// Runs a `caplens` command against a test server's database (`input`: its stdin).
export function caplens(server, args, input = '') {
  return execFileSync(BIN, [...args, '--data-dir', server.dataDir], {
    input,
    env: { ...process.env, DATABASE_URL: '', CAPLENS_LOG: 'warn' },
  }).toString();
}
