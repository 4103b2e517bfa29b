import { defineConfig } from "@playwright/test";

// End to end against the local stack (`make test` starts it and exports CONSOLE_URL), in
// Debian's Chromium: Playwright's own browser download cannot work offline.
export default defineConfig({
  testDir: "tests",
  outputDir: process.env.CONSOLE_ARTIFACTS ?? "test-results",
  timeout: 180_000,
  expect: { timeout: 20_000 },
  workers: 1,
  reporter: [["list"]],
  use: {
    baseURL: process.env.CONSOLE_URL,
    headless: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      // As root (CI) Chromium refuses to start sandboxed.
      args: ["--no-sandbox"],
    },
  },
});
