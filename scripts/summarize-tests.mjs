// Adds up vitest JSON reports, and the core tests' own "N passed, N failed" line, into one
// closing line: "N passed, N failed, N skipped".
import { readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of process.argv.slice(2)) {
  if (!file.endsWith('.json')) {
    const line = /^(\d+) passed, (\d+) failed$/m.exec(readFileSync(file, 'utf8'));
    if (!line) failed += 1;
    else {
      passed += Number(line[1]);
      failed += Number(line[2]);
    }
    continue;
  }
  const report = JSON.parse(readFileSync(file, 'utf8'));
  passed += report.numPassedTests;
  // A file that fails to load has no failed test, only a failed suite: count it once.
  failed += report.numFailedTests || (report.numFailedTestSuites ?? 0);
  skipped += report.numPendingTests + report.numTodoTests;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
