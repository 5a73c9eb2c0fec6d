// Fails on a Markdown code fence that never closes (CommonMark: a closing fence is the
// opening character repeated at least as often, with nothing but spaces after it), and on a
// would-be closing fence with text after it. One such line once turned half of the README
// into a code block.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const files = execFileSync('git', ['ls-files', '*.md'], { encoding: 'utf8' }).split('\n').filter(Boolean);
let failed = false;
for (const file of files) {
  let open = null;
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const fence = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
      if (!fence) return;
      const [, marks, rest] = fence;
      if (!open) {
        // An opening backtick fence may not have a backtick in its info string.
        if (!(marks[0] === '`' && rest.includes('`'))) open = { marks, line: i + 1 };
      } else if (marks[0] === open.marks[0] && marks.length >= open.marks.length && rest.trim() === '') {
        open = null;
      } else if (marks[0] === open.marks[0] && rest.trim() !== '') {
        // Text after a fence: it closes nothing, and the block runs on (a wider fence added
        // later only hides that).
        console.error(
          `${file}:${i + 1}: "${marks}" with text after it does not close the block opened at line ${open.line}`,
        );
        failed = true;
      }
    });
  if (open) {
    console.error(`${file}:${open.line}: code fence ${open.marks} is never closed`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
