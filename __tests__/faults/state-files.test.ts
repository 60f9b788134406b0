/**
 * The one place that writes state (src/state/files.ts) on a real nearly full volume (a tiny
 * tmpfs; needs root, as CI has) and with symlinks planted where state belongs.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { appendLines, readJsonState, writeJsonAtomic } from '../../src/state/files.js';
import { fillVolume } from '../helpers/volume.js';

test('an append is whole or absent: a short write on a nearly full volume leaves no torn line', async () => {
  const volume = mkdtempSync(join(tmpdir(), 'l2tiny-'));
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', volume]);
  try {
    const file = join(volume, 'log.jsonl');
    const first = JSON.stringify({ n: 1, pad: 'x'.repeat(3900) });
    await appendLines(file, [first]);
    // Fill every free page: the next append fits only partly into the file's last page.
    fillVolume(volume);
    const second = JSON.stringify({ n: 2, pad: 'y'.repeat(1000) });
    await expect(appendLines(file, [second])).rejects.toThrow(/cannot write .*log\.jsonl: the volume is full \(ENOSPC\)/);
    expect(readFileSync(file, 'utf8')).toBe(first + '\n');
    expect(statSync(file).size).toBe(Buffer.byteLength(first) + 1);
  } finally {
    await execa('umount', [volume]);
    rmSync(volume, { recursive: true, force: true });
  }
});

test('state files: a planted symlink is refused, never written or read through', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'l2link-'));
  try {
    const victim = join(dir, 'victim');
    writeFileSync(victim, '{"secret":"do not touch"}\n');
    mkdirSync(join(dir, 'state'));
    symlinkSync(victim, join(dir, 'state/runs.jsonl'));
    symlinkSync(victim, join(dir, 'state/state.json'));
    await expect(appendLines(join(dir, 'state/runs.jsonl'), ['{"n":1}'])).rejects.toThrow(/refusing to follow the symlink at .*runs\.jsonl/);
    await expect(writeJsonAtomic(join(dir, 'state/state.json'), { n: 1 })).rejects.toThrow(/refusing to follow the symlink at .*state\.json/);
    const reports: string[] = [];
    expect(await readJsonState(join(dir, 'state/state.json'), (m) => reports.push(m))).toBeUndefined();
    expect(reports.join('\n')).toMatch(/refusing to follow the symlink/);
    // A state folder that is a link is refused too.
    symlinkSync(dir, join(dir, 'linked'));
    await expect(appendLines(join(dir, 'linked/x.jsonl'), ['{"n":1}'])).rejects.toThrow(/refusing to follow the symlink at .*linked/);
    expect(readFileSync(victim, 'utf8')).toBe('{"secret":"do not touch"}\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
