// Shared by the browser tests: real headless Chromium (Debian's, via puppeteer-core)
// against the pages and token endpoint of `python -m bot web`, a real livekit-server
// and the worker. tests/e2e/test_browser.py starts those and sets:
//   LKBOT_WEB_URL              the page server (tokens grant canUpdateOwnMetadata)
//   LKBOT_WEB_URL_NO_METADATA  one whose tokens do not (as LiveKit's starter apps)
//   CHROMIUM                   the browser (default /usr/bin/chromium)
import * as esbuild from "esbuild";
import puppeteer from "puppeteer-core";
import http from "node:http";
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
 * Serves a page whose only script is `js` from a server of its own (another origin
 * than the page server's: its /token is reached with CORS, as from an app's own site),
 * and opens it. Returns the page's URL. (Puppeteer's request interception would be
 * simpler, but it breaks CORS preflights, and livekit-client's connect makes some.)
 */
export async function openScript(page, js) {
  const server = http.createServer((req, res) => {
    if (req.url === "/app.js") {
      res.writeHead(200, { "Content-Type": "text/javascript" });
      return res.end(js);
    }
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end('<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><body><script type="module" src="/app.js"></script></body>');
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  page.browserContext().once("close", () => server.close());
  page.once("close", () => server.close());
  const url = `http://127.0.0.1:${server.address().port}/`;
  await page.goto(url);
  return url;
}

export function unique(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}
