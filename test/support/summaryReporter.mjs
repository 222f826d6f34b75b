// Closes every Jest run with one plain line, `tests: N passed, N failed, N skipped`, the
// form CI reads whatever the runner: Jest's own summary ("Tests: 3 passed, 3 total") is not it.
// When Chromium is missing, the browser tests were skipped: say so here too, where it is seen.
import fs from 'node:fs';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    // A suite that fails to load (syntax error, failing import) counts as a failure too.
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const browserNote = fs.existsSync(chromiumPath)
      ? ''
      : `browser tests skipped: Chromium not found at ${chromiumPath} (apt-get install -y chromium)\n`;
    process.stdout.write(
      `\n${browserNote}tests: ${results.numPassedTests} passed, ${failed} failed, ${skipped} skipped\n`,
    );
  }
}
