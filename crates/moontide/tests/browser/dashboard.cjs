// Drives the dashboard in a real browser through puppeteer-core (WebDriver
// BiDi for Firefox): sign in, see live decisions and chart points, open a
// reason, press Pause. Used by tests/dashboard.rs for Firefox.
// Usage: node dashboard.cjs PUPPETEER_DIR BROWSER EXECUTABLE BASE_URL TOKEN SCREENSHOT
"use strict";
const [puppeteerDir, browserName, executablePath, base, token, screenshot] = process.argv.slice(2);
const puppeteer = require(puppeteerDir);

async function main() {
  const browser = await puppeteer.launch({ browser: browserName, executablePath, headless: true });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", e => errors.push(String(e)));
    await page.setViewport({ width: 1300, height: 1000 });
    await page.goto(base + "/");
    await page.type("#token", token);
    await page.click("#signin-button");
    const timeout = 30000;
    await page.waitForSelector("#policy-web ol.timeline li.decision", { timeout });
    await page.waitForFunction(() => document.getElementById("status").textContent === "live", { timeout });
    const before = await page.$$eval("#policy-web ol.timeline li.decision", l => l.length);
    await page.waitForFunction(n => document.querySelectorAll("#policy-web ol.timeline li.decision").length > n, { timeout }, before);
    const points = await page.$$eval("#policy-web svg.replicas circle.pt", l => l.length);
    const metricLines = await page.$$eval("#policy-web svg.metrics path.metric", l => l.length);
    await page.click("#policy-web ol.timeline li.decision");
    const detail = await page.$eval("#policy-web ol.timeline li.decision.open pre", e => e.textContent);
    await page.click("#policy-web button.pause");
    await page.waitForSelector("#policy-web .badge.paused", { timeout });
    await page.screenshot({ path: screenshot });
    console.log(JSON.stringify({ points, metricLines, detail, errors }));
  } finally {
    await browser.close();
  }
}

main().catch(e => { console.error(String(e && e.stack || e)); process.exit(1); });
