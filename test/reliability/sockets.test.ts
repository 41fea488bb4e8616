// Socket bounds (docs/RELIABILITY.md rows "idle sockets" and "open-file limit"): limits.maxSockets
// sheds new sockets of any kind, the server serves again as soon as they go, and a low open-file
// limit is reported at start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { loadServerConfig } from '../../services/server/src/config.ts';
import {
  FD_RESERVE,
  reportAcceptQueue,
  SOCKET_HEADROOM,
  socketCap,
} from '../../services/server/src/http/socket-limits.ts';
import { createLogger } from '../../services/server/src/logger.ts';
import { acceptQueueCap } from '../../services/shared/somaxconn.ts';
import { ROOT } from '../helpers/process.ts';
import { connect } from '../helpers/raw-socket.ts';
import { eventually, startServer } from '../helpers/server.ts';

describe('limits.maxSockets', () => {
  test('SSE_MAX_SOCKETS and SSE_STALL_TIMEOUT_MS set the keys; 0 means derived from the limits', () => {
    const c = loadServerConfig({ SSE_MAX_SOCKETS: '300', SSE_STALL_TIMEOUT_MS: '5000' });
    assert.equal(c.limits.maxSockets, 300);
    assert.equal(c.limits.stallTimeoutMs, 5000);
    assert.equal(socketCap(0, 20_000, 20_000), 20_000 - FD_RESERVE);
    assert.equal(socketCap(0, 1000, 1_048_576), 1000 + SOCKET_HEADROOM);
    assert.equal(socketCap(0, 1000, null), 1000 + SOCKET_HEADROOM);
    assert.equal(socketCap(300, 20_000, 1024), 300);
  });

  test('idle sockets beyond the cap are closed at once; the server serves again once they go', async (t) => {
    const CAP = 200;
    const s = await startServer({ limits: { maxSockets: CAP } });
    const sockets: net.Socket[] = [];
    try {
      let closedByServer = 0;
      for (let i = 0; i < CAP + 100; i++) {
        const socket = await connect(s.port);
        socket.on('error', () => {});
        socket.once('close', () => {
          closedByServer++;
        });
        sockets.push(socket);
      }
      await eventually(() => closedByServer >= 100, 10_000, 'sockets past the cap closed');
      const held = await new Promise<number>((r) => s.server.http.getConnections((_e, n) => r(n)));
      const shedProbe = await fetch(`${s.base}/healthz`).then(
        (r) => r.status,
        () => 'refused',
      );
      t.diagnostic(
        `${CAP + 100} idle sockets: ${closedByServer} closed at once, server holds ${held}; a request meanwhile: ${shedProbe}`,
      );
      assert.equal(closedByServer, 100);
      assert.equal(shedProbe, 'refused');
      assert.equal(held, CAP);
      for (const socket of sockets) socket.destroy();
      await eventually(
        async () =>
          (await fetch(`${s.base}/healthz`).then(
            (r) => r.status,
            () => 0,
          )) === 200,
        10_000,
        'served again',
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await s.close();
    }
  });

  test('a low open-file limit is reported at start and caps the sockets below it', async () => {
    const child = spawn(
      'sh',
      ['-c', `ulimit -n 512 && exec "${process.execPath}" services/server/src/main.ts`],
      {
        cwd: ROOT,
        env: { ...process.env, HOST: '127.0.0.1', PORT: '0', SSE_MAX_CONNECTIONS: '1000' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    const exited = once(child, 'exit');
    let code: unknown;
    try {
      await eventually(() => out.includes('"event":"listening"'), 15_000, 'listening');
      child.kill('SIGTERM');
      [code] = await exited;
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
    const warning = out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.event === 'fd_limit_low');
    assert.ok(warning, out);
    assert.equal(warning.openFileLimit, 512);
    assert.equal(warning.maxSockets, 512 - 64);
    assert.equal(code, 0);
  });
});

describe('the accept queue', () => {
  test('a kernel cap below limits.maxConnections is said at start, once, with both numbers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'somaxconn-'));
    try {
      const file = join(dir, 'somaxconn');
      writeFileSync(file, '4096\n');
      assert.equal(acceptQueueCap(file), 4096);
      assert.equal(acceptQueueCap(join(dir, 'missing')), null);
      writeFileSync(join(dir, 'bad'), 'many\n');
      assert.equal(acceptQueueCap(join(dir, 'bad')), null);
      const lines: Record<string, unknown>[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(JSON.parse(chunk.toString()));
          done();
        },
      });
      const logger = createLogger('info', sink);
      assert.equal(reportAcceptQueue(20_000, logger, 4096), 4096);
      assert.equal(reportAcceptQueue(20_000, logger, 65_535), 65_535);
      assert.equal(reportAcceptQueue(20_000, logger, null), null);
      assert.equal(lines.length, 1);
      assert.equal(lines[0]!.event, 'accept_queue_capped');
      assert.equal(lines[0]!.somaxconn, 4096);
      assert.equal(lines[0]!.maxConnections, 20_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
