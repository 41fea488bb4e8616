// Key rotation without a restart: a JWKS file gains a new key and drops the old one; after
// reload(), after the file watcher sees the change, and after SIGHUP to a running process, new
// tokens work and old ones get 401. A new file that does not read as keys keeps the old keys and
// logs an error.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import {
  type AuthDecision,
  type Authorizer,
  createAuthorizer,
} from '../../services/server/src/auth/access.ts';
import { createLogger } from '../../services/server/src/logger.ts';
import { eventually } from '../../services/shared/eventually.ts';
import {
  authConfig,
  jwks,
  keyPair,
  newSecret,
  replaceFile,
  signToken,
  type TestKeyPair,
  tempDir,
} from '../helpers/auth-keys.ts';
import { ROOT } from '../helpers/process.ts';

const CLAIMS = { sse: { subscribe: ['orders.*'] } };

/** A JWKS file with key A ("old"), tokens of A and of B ("new", same algorithm), and a log capture. */
async function rotationSetup() {
  const { dir, remove } = tempDir();
  const file = join(dir, 'jwks.json');
  const a = keyPair('ec');
  const b = keyPair('ec');
  writeFileSync(file, jwks({ pair: a, kid: 'old' }));
  const tokenA = await signToken(a.privateKey, CLAIMS, { alg: 'ES256', kid: 'old' });
  const tokenB = await signToken(b.privateKey, CLAIMS, { alg: 'ES256', kid: 'new' });
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger(
    'info',
    new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
        done();
      },
    }),
  );
  return { dir, remove, file, a, b, tokenA, tokenB, logs, logger };
}

const ask = async (authz: Authorizer, token: string): Promise<AuthDecision> =>
  await authz.authorize('subscribe', 'orders.1', { headers: { authorization: `Bearer ${token}` } });

const rotated = (b: TestKeyPair) => jwks({ pair: b, kid: 'new' });

test('reload(): the new key works, the dropped one gets 401 unknown_kid', async () => {
  const s = await rotationSetup();
  const authz = await createAuthorizer(authConfig({ jwt: { jwksFile: s.file } }), {
    logger: s.logger,
    watchKeys: false,
    reloadOnSighup: false,
  });
  try {
    assert.equal((await ask(authz, s.tokenA)).kind, 'allowed');
    assert.equal((await ask(authz, s.tokenB)).kind, 'refused');
    // Both keys for a while (the usual rotation), then only the new one.
    replaceFile(s.file, jwks({ pair: s.a, kid: 'old' }, { pair: s.b, kid: 'new' }));
    assert.equal(await authz.reload(), true);
    assert.equal((await ask(authz, s.tokenA)).kind, 'allowed');
    assert.equal((await ask(authz, s.tokenB)).kind, 'allowed');
    replaceFile(s.file, rotated(s.b));
    assert.equal(await authz.reload(), true);
    assert.equal((await ask(authz, s.tokenB)).kind, 'allowed');
    const old = await ask(authz, s.tokenA);
    assert.ok(old.kind === 'refused' && old.status === 401 && old.reason === 'unknown_kid');
    const reloaded = s.logs.filter((l) => l.event === 'auth_keys_reloaded');
    assert.equal(reloaded.length, 2);
    assert.deepEqual(reloaded[1]!.kids, ['new']);
    assert.deepEqual(reloaded[1]!.algorithms, ['ES256']);
  } finally {
    authz.close();
    s.remove();
  }
});

test('a bad new file keeps the old keys and logs an error; a later good one is taken', async () => {
  const s = await rotationSetup();
  const authz = await createAuthorizer(authConfig({ jwt: { jwksFile: s.file } }), {
    logger: s.logger,
    watchKeys: false,
    reloadOnSighup: false,
  });
  try {
    for (const bad of [
      '{"keys": [',
      '{"keys": []}',
      '',
      JSON.stringify({ keys: [{ kty: 'oct', k: 'AAAA' }] }),
    ]) {
      replaceFile(s.file, bad);
      assert.equal(await authz.reload(), false, bad);
      assert.equal((await ask(authz, s.tokenA)).kind, 'allowed', bad);
    }
    const failures = s.logs.filter((l) => l.event === 'auth_keys_reload_failed');
    assert.equal(failures.length, 4);
    assert.equal(failures[0]!.level, 50);
    assert.equal(failures[0]!.file, s.file);
    assert.match(String(failures[0]!.error), /not JSON/);
    // A missing file is bad too.
    rmSync(s.file);
    assert.equal(await authz.reload(), false);
    assert.equal((await ask(authz, s.tokenA)).kind, 'allowed');
    replaceFile(s.file, rotated(s.b));
    assert.equal(await authz.reload(), true);
    assert.equal((await ask(authz, s.tokenB)).kind, 'allowed');
  } finally {
    authz.close();
    s.remove();
  }
});

test('the file watcher: a replaced file and a file rewritten in place are both picked up', async () => {
  const s = await rotationSetup();
  const authz = await createAuthorizer(authConfig({ jwt: { jwksFile: s.file } }), {
    logger: s.logger,
    watchKeys: true,
    reloadOnSighup: false,
    reloadDebounceMs: 20,
  });
  try {
    assert.equal((await ask(authz, s.tokenA)).kind, 'allowed');
    // Replaced by rename (deploy tools, editors).
    replaceFile(s.file, rotated(s.b));
    await eventually(
      async () => (await ask(authz, s.tokenB)).kind === 'allowed',
      10_000,
      'new key',
    );
    assert.equal((await ask(authz, s.tokenA)).kind, 'refused');
    // Rewritten in place, back to the old key.
    writeFileSync(s.file, jwks({ pair: s.a, kid: 'old' }));
    await eventually(
      async () => (await ask(authz, s.tokenA)).kind === 'allowed',
      10_000,
      'old key',
    );
    assert.equal((await ask(authz, s.tokenB)).kind, 'refused');
    // A broken write is ignored until the file is whole again.
    writeFileSync(s.file, '{"keys": [');
    await eventually(
      () => s.logs.some((l) => l.event === 'auth_keys_reload_failed'),
      10_000,
      'error log',
    );
    assert.equal((await ask(authz, s.tokenA)).kind, 'allowed');
  } finally {
    authz.close();
    s.remove();
  }
});

test('close() stops the watcher: later changes are not read', async () => {
  const s = await rotationSetup();
  const options = { reloadOnSighup: false, reloadDebounceMs: 5 };
  const config = authConfig({ jwt: { jwksFile: s.file } });
  const closed = await createAuthorizer(config, options);
  const open = await createAuthorizer(config, options);
  try {
    closed.close();
    replaceFile(s.file, rotated(s.b));
    // The open one sees the change; the closed one, given the same events and then some, does not.
    await eventually(async () => (await ask(open, s.tokenB)).kind === 'allowed', 10_000, 'reload');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await ask(closed, s.tokenB)).kind, 'refused');
    // An explicit reload still works.
    assert.equal(await closed.reload(), true);
    assert.equal((await ask(closed, s.tokenB)).kind, 'allowed');
  } finally {
    open.close();
    s.remove();
  }
});

test('SIGHUP to a running process re-reads the JWKS file', async () => {
  const s = await rotationSetup();
  const child = spawn(process.execPath, ['test/helpers/auth-harness.ts'], {
    cwd: ROOT,
    env: { ...process.env, SSE_CONFIG: '', SSE_JWKS_FILE: s.file, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  let buffered = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    buffered += text;
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const line of parts) if (line) lines.push(JSON.parse(line));
  });
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  try {
    await eventually(
      () => lines.some((l) => l.event === 'listening'),
      20_000,
      `harness: ${stderr}`,
    );
    const port = lines.find((l) => l.event === 'listening')!.port as number;
    const get = async (token: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/subscribe/orders.1`, {
        headers: { authorization: `Bearer ${token}` },
      });
      return (await res.json()) as AuthDecision;
    };
    assert.equal((await get(s.tokenA)).kind, 'allowed');
    replaceFile(s.file, rotated(s.b));
    // Not watched: nothing changes until the signal.
    assert.equal((await get(s.tokenB)).kind, 'refused');
    child.kill('SIGHUP');
    await eventually(() => lines.some((l) => l.event === 'auth_keys_reloaded'), 10_000, 'reload');
    assert.ok(lines.some((l) => l.event === 'auth_keys_sighup'));
    assert.equal((await get(s.tokenB)).kind, 'allowed');
    const old = await get(s.tokenA);
    assert.ok(old.kind === 'refused' && old.status === 401 && old.reason === 'unknown_kid');
    // The process is still alive (SIGHUP did not end it).
    assert.equal(child.exitCode, null);
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
    s.remove();
  }
});

test('SIGHUP is listened for only while a key file is configured, until close()', async () => {
  const s = await rotationSetup();
  const before = process.listenerCount('SIGHUP');
  const secretOnly = await createAuthorizer(authConfig({ jwt: { secret: newSecret() } }));
  assert.equal(process.listenerCount('SIGHUP'), before);
  const withFile = await createAuthorizer(authConfig({ jwt: { jwksFile: s.file } }));
  assert.equal(process.listenerCount('SIGHUP'), before + 1);
  withFile.close();
  secretOnly.close();
  assert.equal(process.listenerCount('SIGHUP'), before);
  s.remove();
});
