// Socket bounds (docs/RELIABILITY.md rows "idle sockets" and "open-file limit"): limits.maxSockets
// sheds new sockets of any kind, the server serves again as soon as they go, and a low open-file
// limit is reported at start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type net from 'node:net';
import { describe, test } from 'node:test';
import { loadServerConfig } from '../../services/server/src/config.ts';
import {
  FD_RESERVE,
  SOCKET_HEADROOM,
  socketCap,
} from '../../services/server/src/http/socket-limits.ts';
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
