/** The README documents every setting, command and exit code that exists. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers/run.js';
import { SETTINGS } from '../src/config/settings.js';
import { buildProgram as backup } from '../src/cli/l2backup.js';
import { buildProgram as alert } from '../src/cli/l2alert.js';
import { buildProgram as health } from '../src/cli/l2health.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

test('the quick start is the two commands, and .ci/run runs the test one', () => {
  const start = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('## The programs'));
  expect(start).toContain('npm install && npm run demo');
  expect(start).toContain('npm install && npm test');
  expect(readFileSync(join(ROOT, '.ci/run'), 'utf8')).toMatch(/^npm install .*&& npm test$/m);
});

test('every setting is in the configuration table', () => {
  for (const name of Object.keys(SETTINGS)) expect(readme).toContain(`| \`${name}\` |`);
});

test('every command is documented', () => {
  for (const [prog, build] of [['l2backup', backup], ['l2alert', alert], ['l2health', health]] as const) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${prog}\``))!;
    for (const c of build().commands) expect([prog, row.includes(`\`${c.name()}`)]).toEqual([prog, true]);
  }
});

test('every exit code is documented', () => {
  for (const code of [0, 1, 2, 3, 75]) expect(readme).toMatch(new RegExp(`^\\| ${code} \\|`, 'm'));
});
