// tests/browser/docs_test.mjs: /docs in a real browser, as a person uses it:
// headless Chromium (Debian's chromium + chromium-driver) driven over the
// W3C WebDriver protocol with Node's built-in fetch, no npm package.
//
//   node tests/browser/docs_test.mjs BASE_URL EXPECTED_TITLE [SCREENSHOT.png]
//
// Opens BASE_URL/docs, expands GET /todos, clicks "Try it out" and
// "Execute", and checks that the response shown is 200 and lists the todo
// titled EXPECTED_TITLE. Prints `ok - ` / `not ok - ` lines; exit 1 on a
// failure. CHROMIUM and CHROMEDRIVER override the binaries' paths.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, expectedTitle, screenshot] = process.argv.slice(2);
if (!base || !expectedTitle) {
  console.error("usage: node tests/browser/docs_test.mjs BASE_URL EXPECTED_TITLE [SCREENSHOT.png]");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const CHROMEDRIVER = process.env.CHROMEDRIVER || "/usr/bin/chromedriver";
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

let failures = 0;
function check(name, condition, detail) {
  if (condition) console.log(`ok - ${name}`);
  else {
    failures++;
    console.log(`not ok - ${name}`);
    if (detail) console.log(`# ${String(detail).slice(0, 500).replace(/\n/g, "\n# ")}`);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---- a minimal WebDriver client ------------------------------------------

let driverUrl;
async function wd(method, path, body) {
  const res = await fetch(driverUrl + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${json.value?.message || res.status}`);
  return json.value;
}

let session;
const find = async (css) => (await wd("POST", `/session/${session}/element`, { using: "css selector", value: css }))[ELEMENT];
const click = (el) => wd("POST", `/session/${session}/element/${el}/click`, {});
const text = (el) => wd("GET", `/session/${session}/element/${el}/text`);
const run = (script, ...args) => wd("POST", `/session/${session}/execute/sync`, { script, args });

// Polls for an element matching css (and, optionally, whose text matches).
async function waitFor(css, { contains, timeout = 15000 } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      const el = await find(css);
      if (!contains) return el;
      last = await text(el);
      if (last.includes(contains)) return el;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${css}${contains ? ` containing "${contains}"` : ""} (last: ${last})`);
}

// ---- the test -------------------------------------------------------------

const profile = mkdtempSync(join(tmpdir(), "todohost-chromium-"));
const port = await freePort();
const driver = spawn(CHROMEDRIVER, [`--port=${port}`], { stdio: ["ignore", "ignore", "pipe"] });
let driverErr = "";
driver.stderr.on("data", (d) => (driverErr += d));
driverUrl = `http://127.0.0.1:${port}`;

try {
  for (let i = 0; ; i++) {
    try {
      if ((await wd("GET", "/status")).ready) break;
    } catch (e) {
      if (i > 100) throw new Error(`chromedriver did not start: ${e.message} ${driverErr}`);
    }
    await sleep(100);
  }
  const created = await wd("POST", "/session", {
    capabilities: {
      alwaysMatch: {
        browserName: "chrome",
        "goog:chromeOptions": {
          binary: CHROMIUM,
          args: [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1280,1600", `--user-data-dir=${profile}`,
          ],
        },
      },
    },
  });
  session = created.sessionId;
  check("a headless Chromium session starts", !!session);

  await wd("POST", `/session/${session}/url`, { url: `${base}/docs` });
  const title = await wd("GET", `/session/${session}/title`);
  check("/docs has Swagger UI's title", title.includes("Swagger UI"), title);

  // Swagger UI renders each operation as #operations-<tag>-<operationId>
  const op = "#operations-todos-list_todos_todos_get";
  const summary = await waitFor(`${op} .opblock-summary`);
  check("Swagger UI shows GET /todos (loaded from /openapi.json)", !!summary);
  await click(await find(`${op} .opblock-summary-control`).catch(() => summary));
  const tryOut = await waitFor(`${op} .try-out__btn`);
  check("GET /todos expands", !!tryOut);
  await click(tryOut);
  const execute = await waitFor(`${op} .execute`);
  check('"Try it out" shows Execute', !!execute);
  await click(execute);

  const status = await waitFor(`${op} .live-responses-table tr.response .response-col_status`, { contains: "200" });
  check("Execute gets 200", (await text(status)).includes("200"));
  const body = await waitFor(`${op} .live-responses-table tr.response .response-col_description pre`, {
    contains: expectedTitle,
  });
  const shown = await text(body);
  check(`the response lists the todos (with "${expectedTitle}")`, shown.includes(expectedTitle), shown);
  const url = await run(
    `return document.querySelector(arguments[0]).innerText`,
    `${op} .request-url pre`,
  ).catch(() => "");
  check("the request went to this server's /todos", url.includes(`${base}/todos`), url);

  const errors = await run(
    `return Array.from(document.querySelectorAll('.errors-wrapper, .loading-container .errors')).map(e => e.innerText).join(' | ')`,
  );
  check("Swagger UI reports no schema errors", !errors, errors);

} catch (e) {
  check("the browser run completes", false, e.stack || e.message);
} finally {
  if (session && screenshot) {
    const png = await wd("GET", `/session/${session}/screenshot`).catch(() => null);
    if (png) writeFileSync(screenshot, Buffer.from(png, "base64"));
  }
  if (session) await wd("DELETE", `/session/${session}`).catch(() => {});
  driver.kill("SIGTERM");
  rmSync(profile, { recursive: true, force: true });
}

console.log(`# ${failures === 0 ? "all passed" : failures + " failed"}`);
process.exit(failures === 0 ? 0 : 1);
