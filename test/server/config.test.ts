// Renamed config names keep working with a warning: channels.maxEventBytes became
// channels.maxBodyBytes (it bounds the whole publish body), SSE_MAX_EVENT_BYTES became
// SSE_MAX_BODY_BYTES.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadServerConfig } from '../../services/server/src/config.ts';
import { spawnServer } from '../helpers/process.ts';

test('the current names apply with no warning', () => {
  const warnings: string[] = [];
  const c = loadServerConfig({ SSE_MAX_BODY_BYTES: '2048' }, {}, warnings);
  assert.equal(c.channels.maxBodyBytes, 2048);
  assert.deepEqual(warnings, []);
});

test('SSE_MAX_EVENT_BYTES still sets the body limit, with a warning; the new name wins', () => {
  const warnings: string[] = [];
  const c = loadServerConfig({ SSE_MAX_EVENT_BYTES: '4096' }, {}, warnings);
  assert.equal(c.channels.maxBodyBytes, 4096);
  assert.deepEqual(warnings, [
    'environment variable SSE_MAX_EVENT_BYTES is deprecated; use SSE_MAX_BODY_BYTES',
  ]);
  const both = loadServerConfig({ SSE_MAX_EVENT_BYTES: '4096', SSE_MAX_BODY_BYTES: '8192' });
  assert.equal(both.channels.maxBodyBytes, 8192);
});

test('channels.maxEventBytes in a config file still works, with a warning', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'http-sse-config-'));
  try {
    const file = join(dir, 'server.yaml');
    writeFileSync(file, 'channels:\n  maxEventBytes: 3000\n');
    const warnings: string[] = [];
    const c = loadServerConfig({ SSE_CONFIG: file }, {}, warnings);
    assert.equal(c.channels.maxBodyBytes, 3000);
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0]!,
      /channels\.maxEventBytes is deprecated; it is now channels\.maxBodyBytes/,
    );
    // The server logs it once at start, as a JSON line.
    const srv = await spawnServer({ SSE_CONFIG: file });
    try {
      const entry = srv.logs.find((l) => l.event === 'config_deprecated');
      assert.ok(entry, JSON.stringify(srv.logs) + srv.stderr());
      assert.equal(entry.level, 40);
    } finally {
      await srv.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
