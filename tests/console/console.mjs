// The keygate console in a real browser: Debian's Chromium driven by playwright-core, against
// the built keygate that tests/it/console.rs started. Secrets read from the page are checked
// with grpcurl and the token endpoint, as their users would.
//
// Environment: BASE_URL, GRPC_ADDR, GRPCURL, CHROMIUM, SCREENSHOTS (a directory), ADMIN_KEY (a
// platform admin), ORG_ADMIN_KEY (an admin of organization acme), ACME_KEY_NAME (a key of acme).
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env("BASE_URL");
const SHOTS = env("SCREENSHOTS");
mkdirSync(SHOTS, { recursive: true });
rmSync(`${SHOTS}/failure.png`, { force: true });

let checks = 0;
function check(condition, what) {
  checks += 1;
  if (!condition) throw new Error(`check failed: ${what}`);
  console.log(`ok ${checks} - ${what}`);
}

function authorize(secret, scopes = ["incidents:read"]) {
  const body = JSON.stringify({ credentials: { api_key: secret }, required_scopes: scopes });
  const out = execFileSync(env("GRPCURL"), ["-plaintext", "-d", body, env("GRPC_ADDR"), "keygate.v1.AuthService/Authorize"]);
  const answer = JSON.parse(out.toString());
  return answer.decision?.allowed === true;
}

async function token(clientId, secret) {
  const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString("base64");
  const response = await fetch(`${BASE}/oauth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${basic}` },
    body: "grant_type=client_credentials",
  });
  return response.status;
}

/** Clicks the button named `name` and waits for the page it leads to. */
async function submit(page, name) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST"),
    page.getByRole("button", { name, exact: true }).click(),
  ]);
  await page.waitForLoadState("load");
  return response;
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

async function signIn(page, credential) {
  await page.goto(`${BASE}/console`);
  await page.fill("#credential", credential);
  return submit(page, "Sign in");
}

/** Presses Tab until the element `id` has the focus; how many presses it took. */
async function tabTo(page, id) {
  for (let presses = 1; presses <= 80; presses += 1) {
    await page.keyboard.press("Tab");
    if (await page.evaluate(() => document.activeElement?.id) === id) return presses;
  }
  throw new Error(`Tab never reached #${id}`);
}

/** Every visible form control has a label. */
async function unlabelled(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea, button")]
      .filter((el) => el.type !== "hidden" && !el.hidden)
      .filter((el) => (el.tagName === "BUTTON" ? !el.textContent.trim() : el.labels.length === 0 && !el.getAttribute("aria-label")))
      .map((el) => el.outerHTML),
  );
}

const browser = await chromium.launch({ executablePath: env("CHROMIUM"), args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
const page = await context.newPage();
try {
  // Signing in: a refused credential, then the admin's; the browser keeps only an opaque cookie.
  let response = await page.goto(`${BASE}/console`);
  check(page.url().endsWith("/console/sign-in"), "an anonymous visit lands on the sign-in page");
  const headers = response.headers();
  check(/frame-ancestors 'none'/.test(headers["content-security-policy"] ?? ""), "the page forbids framing (CSP)");
  check(/script-src 'self'/.test(headers["content-security-policy"] ?? ""), "only the console's own script runs (CSP)");
  check(headers["x-content-type-options"] === "nosniff", "X-Content-Type-Options: nosniff");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement?.id) === "credential", "the keyboard reaches the credential field");
  await shot(page, "01-sign-in");
  response = await signIn(page, "sk_live_k_000000000000_notakey");
  check(response.status() === 401, `a wrong credential is refused (${response.status()})`);
  check(await page.locator("[role=alert]").isVisible(), "and the page says why");

  response = await signIn(page, env("ADMIN_KEY"));
  const setCookie = (await response.headerValue("set-cookie")) ?? "";
  check(/HttpOnly/.test(setCookie) && /SameSite=Strict/.test(setCookie) && /Path=\/console/.test(setCookie),
    `the session cookie is HttpOnly, SameSite=Strict, Path=/console (${setCookie.replace(/=[^;]+/, "=…")})`);
  check(!/Secure/.test(setCookie), "and not Secure on plain HTTP (it is with TLS)");
  const [cookie] = await context.cookies();
  check(cookie.name === "keygate_console" && cookie.httpOnly && cookie.sameSite === "Strict", "the browser stores it so");
  check(!cookie.value.includes(env("ADMIN_KEY")) && !(await page.content()).includes(env("ADMIN_KEY")),
    "the admin key is neither in the cookie nor on the page");
  check(page.url().endsWith("/console/keys"), "signed in, the keys list is shown");

  // A key: created with scopes from the registry, shown once, used over gRPC.
  await page.getByRole("link", { name: "Create API key" }).click();
  check((await unlabelled(page)).length === 0, `every control of the new-key form has a label ${await unlabelled(page)}`);
  response = await submit(page, "Create API key");
  check(response.status() === 422, "a key with no name is refused");
  check((await page.locator("#name-error").textContent()).length > 0, "with the problem beside the name field");
  check(await page.locator("#name").getAttribute("aria-invalid") === "true", "which is marked invalid");
  await shot(page, "02-create-key-errors");
  await page.fill("#name", "Browser key");
  await page.fill("#description", "made in Chromium");
  await page.check("#scope-incidents-read");
  await page.fill("#expires_in_days", "30");
  await page.fill("#max_quota", "1000");
  response = await submit(page, "Create API key");
  check(response.status() === 201, "the key is created");
  const first = await page.locator("#secret").inputValue();
  check(first.startsWith("sk_live_k_"), "its full key is shown");
  check(/only shown once/.test(await page.locator("#secret-warning").textContent()), "with the warning that it is shown once");
  check(await page.getByRole("button", { name: "Copy" }).isVisible(), "and a copy button");
  await shot(page, "03-key-created");
  check(authorize(first), "the shown key authorizes over gRPC");
  check(!authorize(first, ["investigations:write"]), "only for the scopes it was given");

  // The key's page shows it without its secret; rotating shows a new one, both work in the grace period.
  await page.getByRole("link", { name: /go to the key/ }).click();
  check(!(await page.content()).includes(first), "the key's page never shows the secret again");
  const keyUrl = page.url();
  await page.fill("#grace_period_days", "7");
  response = await submit(page, "Rotate key");
  const second = await page.locator("#secret").inputValue();
  check(second.startsWith("sk_live_k_") && second !== first, "rotation shows a new key");
  check(authorize(first) && authorize(second), "during the grace period both the old and the new key work");
  await shot(page, "04-key-rotated");

  // Changing it: an error shown by its field, then a good change.
  await page.goto(keyUrl);
  await page.fill("#name", "");
  response = await submit(page, "Save changes");
  check(response.status() === 422 && (await page.locator("#name-error").isVisible()), "an emptied name is refused beside its field");
  await page.fill("#name", "Browser key (renamed)");
  await submit(page, "Save changes");
  check(await page.locator("h1").textContent() === "Browser key (renamed)", "a rename is saved");

  // Usage: the authorizations above, counted per day by the batched writer (flushed every second).
  await new Promise((resolve) => setTimeout(resolve, 2500));
  await page.goto(keyUrl);
  const caption = await page.locator(".chart figcaption").textContent();
  check(/^[1-9]\d* requests in the last 14 days/.test(caption), `the usage chart counts the key's requests (${caption})`);
  check(await page.locator("#quota").isVisible(), "and its quota this month is shown");
  await shot(page, "05-key-page");

  // Disabling asks first, then the key stops.
  await page.getByRole("link", { name: "Disable key…" }).click();
  check(/cannot be undone/.test(await page.content()), "disabling asks for confirmation");
  await submit(page, "Disable key");
  check((await page.locator(".heading .status").textContent()) === "disabled", "the key is shown disabled");
  check(!authorize(first) && !authorize(second), "and neither of its secrets authorizes any more");

  // Finding it by search.
  await page.goto(`${BASE}/console/keys`);
  await page.fill("#q", "renamed");
  await Promise.all([page.waitForURL(/q=renamed/), page.getByRole("button", { name: "Filter" }).click()]);
  check(await page.getByRole("link", { name: "Browser key (renamed)" }).count() === 1, "search finds the key");
  await page.fill("#q", "no-such-key-anywhere");
  await Promise.all([page.waitForURL(/q=no-such/), page.getByRole("button", { name: "Filter" }).click()]);
  check(await page.locator("tbody tr").count() === 0, "and nothing for a search that matches none");
  // The keyboard alone: Tab to the fields, Space ticks a scope, Enter submits; focus is visible.
  await page.goto(`${BASE}/console/keys/new`);
  await tabTo(page, "name");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check(outline !== "none", `the focused field shows it (outline ${outline})`);
  await page.keyboard.type("Typed key");
  await tabTo(page, "scope-search-read");
  await page.keyboard.press("Space");
  await tabTo(page, "expires_in_days");
  const [typed] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST"),
    page.keyboard.press("Enter"),
  ]);
  await page.waitForLoadState("load");
  check(typed.status() === 201 && authorize(await page.locator("#secret").inputValue(), ["search:read"]),
    "a key created with the keyboard alone works");

  // Flags: the key expiring within a week is marked, and the filter shows it alone.
  await page.goto(`${BASE}/console/keys`);
  const shortRow = page.locator("tbody tr", { hasText: "Short-lived" });
  check(/expires soon/.test(await shortRow.textContent()), "a key expiring within 14 days is flagged");
  check(!/expires soon/.test(await page.locator("tbody tr", { hasText: "bootstrap admin" }).textContent()), "one with a year left is not");
  await page.selectOption("#show", "expiring");
  await Promise.all([page.waitForURL(/show=expiring/), page.getByRole("button", { name: "Filter" }).click()]);
  const expiring = await page.locator("tbody tr").allTextContents();
  check(expiring.length === 1 && expiring[0].includes("Short-lived"), "the expiring filter lists only it");
  await page.goto(`${BASE}/console/keys`);
  await shot(page, "06-keys-list");

  // A client: created with its secret shown once, regenerated after a warning.
  await page.goto(`${BASE}/console/clients/new`);
  await page.fill("#name", "Browser client");
  await page.check("#scope-incidents-read");
  response = await submit(page, "Create API client");
  check(response.status() === 201, "the client is created");
  const clientId = (await page.locator("#client-id").textContent()).trim();
  const clientSecret = await page.locator("#secret").inputValue();
  check(clientSecret.length > 20, "its secret is shown once");
  check((await token(clientId, clientSecret)) === 200, "and gets a token at the token endpoint");
  await page.getByRole("link", { name: /go to the client/ }).click();
  await page.getByRole("link", { name: "Regenerate secret…" }).click();
  check(/immediately invalidates the old secret/.test(await page.content()), "regenerating warns that the old secret stops at once");
  await shot(page, "07-regenerate-warning");
  await submit(page, "Regenerate secret");
  const newSecret = await page.locator("#secret").inputValue();
  check(newSecret !== clientSecret, "a new secret is shown");
  check((await token(clientId, clientSecret)) === 401 && (await token(clientId, newSecret)) === 200,
    "the old secret stops and the new one works");
  await page.goto(`${BASE}/console/clients`);
  await shot(page, "08-clients-list");

  // The audit log holds all of it, actors and targets linked.
  await page.goto(`${BASE}/console/audit`);
  const log = await page.locator("tbody").textContent();
  for (const action of ["admin.sign_in", "api_key.create", "api_key.rotate", "api_key.update", "api_key.disable",
                        "api_client.create", "api_client.regenerate_secret"]) {
    check(log.includes(action), `the audit log lists ${action}`);
  }
  check(await page.locator(`tbody a[href="/console/clients/${clientId}"]`).count() > 0, "targets link to their pages");
  check(await page.locator('tbody a[href^="/console/keys/k_"]').count() > 0, "actors link to their keys");
  await page.fill("#action", "api_key.rotate");
  await Promise.all([page.waitForURL(/action=api_key.rotate/), page.getByRole("button", { name: "Filter" }).click()]);
  const rows = await page.locator("tbody tr").allTextContents();
  check(rows.length === 1 && rows[0].includes("api_key.rotate"), "filtering by action leaves only those entries");
  await page.goto(`${BASE}/console/audit`);
  await shot(page, "09-audit-log");
  // Organizations and plans, for the platform's admin.
  await page.goto(`${BASE}/console/organizations`);
  await page.fill("#slug", "Not A Slug");
  await page.fill("#name", "Initech");
  response = await submit(page, "Create organization");
  check(response.status() === 422 && (await page.locator("#slug-error").isVisible()), "a bad slug is refused beside its field");
  await page.fill("#slug", "initech");
  await page.selectOption("#plan", "free");
  await submit(page, "Create organization");
  check(page.url().endsWith("/console/organizations/initech"), "an organization is created");
  await page.selectOption("#plan", "pro");
  await submit(page, "Save changes");
  check(/pro/.test(await page.locator("dl.facts").textContent()), "and moved to another plan");
  await page.goto(`${BASE}/console/organizations`);
  await shot(page, "10-organizations");

  // Every control of every main page has a label.
  for (const path of ["/console/keys", "/console/keys/new", keyUrl.replace(BASE, ""), "/console/clients",
                      "/console/clients/new", `/console/clients/${clientId}`, "/console/organizations",
                      "/console/organizations/initech", "/console/audit"]) {
    await page.goto(`${BASE}${path}`);
    const missing = await unlabelled(page);
    check(missing.length === 0, `every control on ${path} has a label ${missing.join(" ")}`);
  }

  // The client's usage: the tokens it got, counted like a key's requests.
  await page.goto(`${BASE}/console/clients/${clientId}`);
  const clientCaption = await page.locator(".chart figcaption").textContent();
  check(/^[1-9]\d* requests/.test(clientCaption), `the client's usage chart counts its tokens (${clientCaption})`);

  // CSRF: a state-changing request without this session's token changes nothing.
  const before = await page.request.get(`${BASE}/console/keys`).then((r) => r.text());
  let forged = await page.request.post(`${BASE}/console/keys`, { form: { name: "Forged", scopes: "incidents:read" } });
  check(forged.status() === 403, `a form without the CSRF token is refused (${forged.status()})`);
  forged = await page.request.post(`${BASE}/console/keys`, { form: { name: "Forged", scopes: "incidents:read", csrf: "guess" } });
  check(forged.status() === 403, "and one with a wrong token");
  const after = await page.request.get(`${BASE}/console/keys`).then((r) => r.text());
  check(!after.includes("Forged") && before.match(/(\d+) keys/)[1] === after.match(/(\d+) keys/)[1], "no key was created");

  // Read-only pages work with JavaScript turned off, and on a phone's screen.
  const cookies = await context.cookies();
  const noScript = await browser.newContext({ javaScriptEnabled: false });
  await noScript.addCookies(cookies);
  const plain = await noScript.newPage();
  await plain.goto(`${BASE}/console/keys`);
  check(await plain.getByRole("link", { name: "Browser key (renamed)" }).count() === 1, "the keys list works without JavaScript");
  await plain.goto(`${BASE}/console/audit`);
  check((await plain.locator("tbody tr").count()) > 0, "so does the audit log");
  await noScript.close();
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await phone.addCookies(cookies);
  const small = await phone.newPage();
  await small.goto(`${BASE}/console/keys`);
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the keys list fits a phone's width (overflow ${overflow}px)`);
  await shot(small, "11-keys-on-a-phone");
  await phone.close();

  // Signing out ends the session on the server, not just in this browser.
  await submit(page, "Sign out");
  check(page.url().endsWith("/console/sign-in"), "signing out returns to the sign-in page");
  const replay = await browser.newContext();
  await replay.addCookies(cookies);
  const stale = await replay.newPage();
  await stale.goto(`${BASE}/console/keys`);
  check(stale.url().endsWith("/console/sign-in"), "the old cookie no longer opens the console");
  await replay.close();

  // An organization's admin sees only its own organization.
  const acme = await browser.newContext();
  const org = await acme.newPage();
  await signIn(org, env("ORG_ADMIN_KEY"));
  const list = await org.locator("tbody").textContent();
  check(list.includes(env("ACME_KEY_NAME")), "an organization admin sees its organization's keys");
  check(!list.includes("Browser key"), "and none of another organization's");
  const other = await org.goto(keyUrl);
  check(other.status() === 404, `another organization's key is not found (${other.status()})`);
  await org.goto(`${BASE}/console/keys?organization=platform`);
  check(!(await org.content()).includes("Browser key"), "not even by naming the other organization");
  await acme.close();
  console.log(`all ${checks} checks passed`);
} catch (err) {
  await page.screenshot({ path: `${SHOTS}/failure.png`, fullPage: true }).catch(() => {});
  console.error(err.message ?? err);
  console.error(`at ${page.url()}; the page is in ${SHOTS}/failure.png`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
