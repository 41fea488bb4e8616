// http_sse_build_info{version,node_version} 1 on the server's /metrics.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/process.ts';
import { startServer } from '../helpers/server.ts';

test('GET /metrics has http_sse_build_info with the package.json and Node.js versions', async () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    version: string;
  };
  const srv = await startServer();
  try {
    const text = await (await fetch(`${srv.base}/metrics`)).text();
    assert.match(text, /^# TYPE http_sse_build_info gauge$/m);
    const lines = text.split('\n').filter((l) => l.startsWith('http_sse_build_info{'));
    assert.deepEqual(lines, [
      `http_sse_build_info{version="${version}",node_version="${process.version}"} 1`,
    ]);
  } finally {
    await srv.close();
  }
});
