// Shared by the browser tests: real headless Chromium (Debian's, via puppeteer-core)
// against the pages and token endpoint of `python -m bot web`, a real livekit-server
// and the worker. tests/e2e/test_browser.py starts those and sets:
//   LKBOT_WEB_URL              the page server (tokens grant canUpdateOwnMetadata)
//   LKBOT_WEB_URL_NO_METADATA  one whose tokens do not (as LiveKit's starter apps)
//   CHROMIUM                   the browser (default /usr/bin/chromium)
import * as esbuild from "esbuild";
import puppeteer from "puppeteer-core";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const pkg = path.resolve(here, "..");
export const WEB = process.env.LKBOT_WEB_URL;
export const WEB_NO_METADATA = process.env.LKBOT_WEB_URL_NO_METADATA;
/** Node's test runner option: skip when run without the servers (plain `npm test`). */
export const needsServers = WEB ? {} : { skip: "LKBOT_WEB_URL not set: run via pytest tests/e2e/test_browser.py" };
/** Bound on each wait in a test (generous: the box may be loaded); never a measurement. */
export const WAIT = 60_000;

export async function launch() {
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // several pages at once: none of them is a throttled background tab
      "--disable-background-timer-throttling",
      "--disable-renderer-backgrounding",
      "--disable-backgrounding-occluded-windows",
      // WebRTC over loopback: show the real host address, not an mDNS name
      "--disable-features=WebRtcHideLocalIpsWithMdns",
    ],
    protocolTimeout: 120_000,
  });
}

/** A page that records its console errors and uncaught exceptions. */
export async function newPage(browser) {
  // each page its own context (storage, cookies): two users, not two tabs of one
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") page.errors.push(m.text());
  });
  page.setDefaultTimeout(WAIT);
  return page;
}

/** Bundles `source` (a module that may import "@lkbot/client" or "livekit-client"). */
export async function bundle(source) {
  const out = await esbuild.build({
    stdin: { contents: source, resolveDir: pkg, loader: "ts" },
    bundle: true,
    format: "esm",
    target: "es2022",
    platform: "browser",
    write: false,
    alias: { "@lkbot/client": path.join(pkg, "src/index.ts") },
    logLevel: "silent",
  });
  return out.outputFiles[0].text;
}

/**
 * Opens `url` (on the page server's origin, so /token is same-origin) with `js` as its
 * only script: the request is answered by the test, not the server.
 */
export async function openScript(page, url, js) {
  await page.setRequestInterception(true);
  page.on("request", (req) => {
    if (req.url() === url) {
      return req.respond({
        contentType: "text/html",
        body: `<!doctype html><meta charset="utf-8"><body><script type="module" src="${url}.js"></script></body>`,
      });
    }
    if (req.url() === `${url}.js`) return req.respond({ contentType: "text/javascript", body: js });
    return req.continue();
  });
  await page.goto(url);
}

export function unique(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}
