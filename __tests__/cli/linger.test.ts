/**
 * A finished run ends even when something it opened is still holding the event loop. Seen for
 * real: an S3 server that answers an UploadPart with headers and then never sends the body left
 * three sockets open after the nightly had done its work, and the process never exited; a cron
 * job that never exits piles up. The leaked handle here is planted with --import (a listening
 * server nobody closes), since no real server can be made to leak a handle on demand.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, sandbox } from '../helpers/run.js';

test('a run whose command is done but leaves a handle open still exits, with its own exit code', async () => {
  const sb = sandbox();
  const leak = join(sb.dir, 'leak.mjs');
  writeFileSync(leak, "import { createServer } from 'node:net';\ncreateServer().listen(0, '127.0.0.1');\n");
  const ok = await run('l2alert', ['buffer-status', '--json'], { ...sb.env, NODE_OPTIONS: `--import=${leak}` }, { timeout: 120_000 });
  expect(ok.exitCode).toBe(0);
  expect(JSON.parse(ok.stdout)).toMatchObject({ count: 0 });
  const bad = await run('l2alert', ['send', '--level', 'nonsense', '--title', 't', 'm'], { ...sb.env, NODE_OPTIONS: `--import=${leak}` }, { timeout: 120_000 });
  expect(bad.exitCode).toBe(2);
});
