// Reading what the kernel holds of a socket's bytes (Linux /proc/net/tcp): the table parser, and
// a real socket pair whose reader never reads.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import {
  kernelQueuesAvailable,
  parseTable,
  readSendQueues,
  socketInode,
} from '../../services/server/src/sse/kernel-queues.ts';

const TABLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:5E48 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:5E48 0100007F:C350 01 000E0C00:00000000 01:00000014 00000000     0        0 2222 1 0000000000000000 20 4 30 10 -1
  10000: 0100007F:5E48 0100007F:C351 01 00000010:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 20 4 30 10 -1
`;

test('the parser keeps sockets with bytes in their send queue, by inode', () => {
  const out = new Map<number, number>();
  parseTable(TABLE, out);
  assert.deepEqual(
    [...out],
    [
      [2222, 0x0e0c00],
      [3333, 0x10],
    ],
  );
});

test('a real socket whose peer never reads: its unacknowledged bytes are found by inode', {
  skip: kernelQueuesAvailable() ? false : 'no /proc/net/tcp here',
}, async () => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect(port, '127.0.0.1');
  client.pause(); // never reads
  const sender = await accepted;
  try {
    sender.write(Buffer.alloc(4 << 20, 97));
    const inode = socketInode(sender);
    assert.ok(inode > 0);
    let queued = 0;
    for (let i = 0; i < 100 && queued === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      queued = (await readSendQueues()).get(inode) ?? 0;
    }
    assert.ok(queued > 0, 'the kernel holds bytes the peer did not acknowledge');
  } finally {
    client.destroy();
    sender.destroy();
    server.close();
  }
});
