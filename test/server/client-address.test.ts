// trustProxy: the client address behind a trusted proxy (X-Forwarded-For), and forged headers from
// anyone else ignored; unit tests of the module and the places that use it (limits, publish).
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import { buildServerConfig } from '../../services/server/src/config.ts';
import { clientAddressOf } from '../../services/server/src/http/client-address.ts';
import { publish, Subscriber, startServer } from '../helpers/server.ts';

/** Just what the module reads of a request: the socket's peer and the headers. */
function req(peer: string | undefined, xff?: string): IncomingMessage {
  const headers = xff === undefined ? {} : { 'x-forwarded-for': xff };
  return { socket: { remoteAddress: peer }, headers } as unknown as IncomingMessage;
}

describe('clientAddressOf', () => {
  test('without trustProxy the socket peer is the client, whatever X-Forwarded-For says', () => {
    const of = clientAddressOf([]);
    assert.equal(of(req('203.0.113.9', '198.51.100.1')), '203.0.113.9');
    assert.equal(of(req(undefined)), 'unknown');
  });

  test('a trusted proxy: the address it forwarded (IPv4, CIDR, IPv4-mapped peer)', () => {
    const of = clientAddressOf(['172.16.0.0/12']);
    assert.equal(of(req('172.18.0.5', '198.51.100.7')), '198.51.100.7');
    assert.equal(of(req('::ffff:172.18.0.5', '198.51.100.7')), '198.51.100.7');
    assert.equal(of(req('172.18.0.5')), '172.18.0.5', 'no header: the proxy itself');
  });

  test('a forged X-Forwarded-For from an untrusted peer is ignored', () => {
    const of = clientAddressOf(['10.0.0.1']);
    assert.equal(of(req('203.0.113.9', '127.0.0.1')), '203.0.113.9');
    assert.equal(of(req('10.0.0.2', '127.0.0.1')), '10.0.0.2', 'a neighbour of the proxy');
  });

  test('the walk stops at the first untrusted address: forged entries left of it are ignored', () => {
    const of = clientAddressOf(['10.0.0.0/8']);
    // client 198.51.100.7 sent "X-Forwarded-For: 127.0.0.1"; two trusted proxies appended.
    assert.equal(of(req('10.0.0.1', '127.0.0.1, 198.51.100.7, 10.0.0.2')), '198.51.100.7');
  });

  test('names (loopback, uniquelocal) and IPv6 CIDRs work', () => {
    assert.equal(clientAddressOf(['loopback'])(req('::1', '2001:db8::1')), '2001:db8::1');
    assert.equal(
      clientAddressOf(['uniquelocal'])(req('192.168.1.2', '203.0.113.1')),
      '203.0.113.1',
    );
    assert.equal(clientAddressOf(['fd00::/8'])(req('fd12::1', '203.0.113.1')), '203.0.113.1');
  });

  test('a trusted proxy that forwarded something other than an address: the proxy', () => {
    assert.equal(clientAddressOf(['10.0.0.1'])(req('10.0.0.1', 'unknown')), '10.0.0.1');
  });

  test('a bad trustProxy entry is a config error naming it', () => {
    assert.throws(
      () => buildServerConfig({ trustProxy: ['10.0.0.0/40'] }),
      /10\.0\.0\.0\/40\\" is not an IP address, a CIDR/,
    );
    assert.throws(
      () => buildServerConfig({ trustProxy: ['nginx'] }),
      /nginx\\" is not an IP address/,
    );
  });
});

describe('trustProxy in the server', () => {
  test('maxConnectionsPerIp counts the forwarded address behind a trusted proxy', async () => {
    const t = await startServer({
      trustProxy: ['127.0.0.1'],
      limits: { maxConnectionsPerIp: 1 },
    });
    const held: Subscriber[] = [];
    try {
      const a = new Subscriber(`${t.base}/sse/channels/x`, { 'X-Forwarded-For': '198.51.100.1' });
      const b = new Subscriber(`${t.base}/sse/channels/x`, { 'X-Forwarded-For': '198.51.100.2' });
      held.push(a, b);
      await Promise.all([a.opened, b.opened]);
      assert.deepEqual([a.status, b.status], [200, 200], 'two clients behind one proxy');
      const again = await fetch(`${t.base}/sse/channels/x`, {
        headers: { 'X-Forwarded-For': '198.51.100.1' },
      });
      assert.equal(again.status, 429, 'the same client twice');
      await again.body?.cancel();
    } finally {
      for (const s of held) s.close();
      await t.close();
    }
  });

  test('without trustProxy a forged X-Forwarded-For does not get around maxConnectionsPerIp', async () => {
    const t = await startServer({ limits: { maxConnectionsPerIp: 1 } });
    const one = new Subscriber(`${t.base}/sse/channels/x`, { 'X-Forwarded-For': '198.51.100.1' });
    try {
      await one.opened;
      const forged = await fetch(`${t.base}/sse/channels/x`, {
        headers: { 'X-Forwarded-For': '198.51.100.2' },
      });
      assert.equal(forged.status, 429);
      await forged.body?.cancel();
    } finally {
      one.close();
      await t.close();
    }
  });

  test('without a publish token, a client behind a proxy on loopback may not publish', async () => {
    const t = await startServer({ trustProxy: ['loopback'] });
    try {
      const remote = await publish(
        t.base,
        'c',
        { data: 'x' },
        { 'X-Forwarded-For': '198.51.100.1' },
      );
      assert.equal(remote.status, 403);
      assert.equal(remote.body.error, 'forbidden');
      const local = await publish(t.base, 'c', { data: 'x' });
      assert.equal(local.status, 202, 'loopback itself still publishes');
    } finally {
      await t.close();
    }
  });
});
