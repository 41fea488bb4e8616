// services/server/healthcheck.sh, the container healthcheck: exit 0 only when GET /readyz answers
// 200; 1 when nothing listens, when /readyz answers 503, and when the server never answers.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { freePort } from '../../services/shared/free-port.ts';
import { ROOT } from '../helpers/process.ts';
import { startServer } from '../helpers/server.ts';

const SCRIPT = join(ROOT, 'services/server/healthcheck.sh');

async function probe(port: number): Promise<{ code: number | null; output: string }> {
  const child = spawn('bash', [SCRIPT], {
    env: { PATH: process.env.PATH, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 10_000,
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    output += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    output += s;
  });
  const [code] = await once(child, 'exit');
  return { code: code as number | null, output: output.trim() };
}

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

describe('services/server/healthcheck.sh', { timeout: 30_000 }, () => {
  test('healthy (exit 0) against a ready server, reading the port from $PORT', async () => {
    const srv = await startServer();
    try {
      const r = await probe(srv.port);
      assert.equal(r.code, 0, r.output);
      assert.equal(r.output, 'HTTP/1.1 200 OK');
    } finally {
      await srv.close();
    }
  });

  test('unhealthy when nothing listens on the port', async () => {
    const r = await probe(await freePort());
    assert.equal(r.code, 1);
    assert.match(r.output, /^not ready: nothing accepts connections on 127\.0\.0\.1:\d+$/);
  });

  test('unhealthy when /readyz answers 503 (shutting down, broker down)', async () => {
    const paths: string[] = [];
    const stub = http.createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(503, { 'Content-Type': 'application/json' }).end('{"status":"broker_down"}');
    });
    try {
      const r = await probe(await listen(stub));
      assert.equal(r.code, 1, r.output);
      assert.equal(r.output, 'HTTP/1.1 503 Service Unavailable');
      assert.deepEqual(paths, ['/readyz']);
    } finally {
      stub.close();
      stub.closeAllConnections();
    }
  });

  test('unhealthy after 2 s when the server accepts but never answers', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    try {
      const r = await probe(await listen(silent));
      assert.equal(r.code, 1);
      assert.equal(r.output, 'not ready: no answer from /readyz within 2 s');
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});
