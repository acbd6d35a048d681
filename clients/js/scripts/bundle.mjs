// Bundles (esbuild): the client for the browser (dist/lkbot-client.js, livekit-client
// kept external, and its minified size), and the web pages `bot up` serves
// (web/dist/chat.js from web/chat.ts, web/dist/react.js from web/react.tsx).
// Usage: node scripts/bundle.mjs [--quiet]
import * as esbuild from "esbuild";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, "..");
const web = path.resolve(pkg, "../../web");
const quiet = process.argv.includes("--quiet");
const common = {
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  nodePaths: [path.join(pkg, "node_modules")],
  alias: { "@lkbot/client": path.join(pkg, "src/index.ts") },
  logLevel: "warning",
  legalComments: "none",
};

await esbuild.build({
  ...common,
  entryPoints: [path.join(pkg, "src/index.ts")],
  outfile: path.join(pkg, "dist/lkbot-client.min.js"),
  external: ["livekit-client"],
  minify: true,
});
await esbuild.build({
  ...common,
  entryPoints: {
    chat: path.join(web, "chat.ts"),
    react: path.join(web, "react.tsx"),
  },
  outdir: path.join(web, "dist"),
  minify: true,
  sourcemap: true,
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
});

if (!quiet) {
  const size = (f) => {
    const data = readFileSync(f);
    return `${(data.length / 1024).toFixed(1)} KiB (${(gzipSync(data).length / 1024).toFixed(1)} KiB gzipped)`;
  };
  console.log(`@lkbot/client, minified, without livekit-client: ${size(path.join(pkg, "dist/lkbot-client.min.js"))}`);
  console.log(`web/dist/chat.js (the chat page, livekit-client included): ${size(path.join(web, "dist/chat.js"))}`);
  console.log(`web/dist/react.js (the React example): ${size(path.join(web, "dist/react.js"))}`);
}
