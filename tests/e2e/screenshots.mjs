// Regenerates the README screenshots: node tests/e2e/screenshots.mjs (after scripts/build.sh).
import { mkdirSync } from 'node:fs';
import { startServer, launchBrowser, waitForHydration } from './harness.mjs';

const OUT = new URL('../../docs/screenshots/', import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });
const server = await startServer();
const browser = await launchBrowser();
try {
  const shots = [
    { name: 'experiment', path: '/experiments/demo-rlvr-boundary', theme: 'light', viewport: { width: 1280, height: 720 } },
    { name: 'models-dark', path: '/models', theme: 'dark', viewport: { width: 1280, height: 720 } },
    { name: 'experiment-phone', path: '/experiments/demo-rlvr-boundary', theme: 'light', viewport: { width: 390, height: 844 } },
  ];
  for (const s of shots) {
    const context = await browser.newContext({ viewport: s.viewport, deviceScaleFactor: 1 });
    await context.addCookies([{ name: 'caplens_theme', value: s.theme, url: server.url }]);
    const page = await context.newPage();
    await page.goto(server.url + s.path);
    await waitForHydration(page);
    await page.screenshot({ path: `${OUT}${s.name}.png` });
    await context.close();
    console.log(`wrote docs/screenshots/${s.name}.png`);
  }
} finally {
  await browser.close();
  await server.stop();
}
