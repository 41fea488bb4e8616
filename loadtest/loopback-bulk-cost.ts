// The floor under a replay storm on this machine, with nothing else in the way: N loopback sockets
// each get `total` bytes, written `chunk` bytes at a time as each socket drains (a bare loop, no
// HTTP, no SSE), read and dropped by `receivers` child processes. Prints the wall time until every
// byte arrived, the writer's and the readers' CPU, and the throughput. With `parts` > 1 each chunk
// is written as that many corked buffers (size line, parts, CRLF: a chunked page of one buffer
// per event), to compare with one buffer per page. With `--reuse` the readers read into one
// reused buffer (raw/reading-socket.ts, as the raw receivers do) instead of node's buffer per read.
//   node loadtest/loopback-bulk-cost.ts [sockets 10000] [total 1100000] [chunk 65536] [receivers 2] [parts 1] [--reuse]
import { fork } from 'node:child_process';
import net from 'node:net';
import { connectReading } from './src/raw/reading-socket.ts';

const cpuSeconds = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;

if (process.argv[2] === '--receiver') {
  const [port, count, total, reuse] = process.argv.slice(3).map(Number) as number[] as [
    number,
    number,
    number,
    number,
  ];
  let done = 0;
  for (let i = 0; i < count; i++) {
    if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    let got = 0;
    const onBytes = (d: Buffer) => {
      got += d.length;
      if (got >= total && got - d.length < total && ++done === count) {
        process.send?.({ cpu: cpuSeconds(process.cpuUsage()) });
      }
    };
    const s =
      reuse === 1
        ? connectReading({ host: '127.0.0.1', port }, onBytes)
        : net.connect({ port, host: '127.0.0.1' }).on('data', onBytes);
    s.on('error', () => {});
  }
} else {
  const reuse = process.argv.includes('--reuse');
  const args = process.argv
    .slice(2)
    .filter((a) => a !== '--reuse')
    .map(Number);
  const [sockets = 10_000, total = 1_100_000, chunk = 65_536, receivers = 2, parts = 1] = args;
  if (![sockets, total, chunk, receivers, parts].every((n) => Number.isInteger(n) && n > 0)) {
    process.stderr.write(
      'usage: node loadtest/loopback-bulk-cost.ts [sockets] [total] [chunk] [receivers] [parts] [--reuse]\n',
    );
    process.exit(2);
  }
  const open: net.Socket[] = [];
  const children: ReturnType<typeof fork>[] = [];
  const readerCpu: number[] = [];
  const page = Buffer.alloc(chunk, 97);
  const pieces = Array.from({ length: parts }, (_, i) =>
    page.subarray(Math.floor((i * chunk) / parts), Math.floor(((i + 1) * chunk) / parts)),
  );
  const sizeLine = `${chunk.toString(16)}\r\n`;
  /** One page; false when the socket asks to wait for 'drain'. */
  const writePage = (s: net.Socket): boolean => {
    if (parts === 1) return s.write(page);
    s.cork();
    s.write(sizeLine, 'latin1');
    for (const p of pieces) s.write(p);
    s.write('\r\n', 'latin1');
    s.uncork();
    return !s.writableNeedDrain;
  };
  let started = 0;
  let writerStart: NodeJS.CpuUsage;
  const finish = () => {
    const wall = (performance.now() - started) / 1000;
    const writer = cpuSeconds(process.cpuUsage(writerStart));
    const readers = readerCpu.reduce((a, b) => a + b, 0);
    process.stdout.write(
      `${sockets} sockets x ${total} B in ${chunk} B pages of ${parts} buffer(s), ${receivers} reader process(es)${reuse ? ' reading into one reused buffer' : ''}: ` +
        `${wall.toFixed(2)} s, ${((sockets * total) / 1e9 / wall).toFixed(2)} GB/s; CPU: writer ${writer.toFixed(2)} s, readers ${readers.toFixed(2)} s (connects included)\n`,
    );
    for (const child of children) child.kill();
    for (const s of open) s.destroy();
    server.close();
  };
  const go = () => {
    started = performance.now();
    writerStart = process.cpuUsage();
    for (const s of open) {
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += chunk;
          if (!writePage(s)) {
            s.once('drain', pump);
            return;
          }
        }
      };
      pump();
    }
  };
  const server = net.createServer((s) => {
    open.push(s);
    if (open.length === sockets) go();
  });
  server.listen({ port: 0, host: '127.0.0.1', backlog: 65_535 }, () => {
    const { port } = server.address() as net.AddressInfo;
    const per = Math.ceil(sockets / receivers);
    for (let i = 0; i < receivers; i++) {
      const n = Math.min(per, sockets - i * per);
      const child = fork(import.meta.filename, [
        '--receiver',
        String(port),
        String(n),
        String(total),
        reuse ? '1' : '0',
      ]);
      child.on('message', (m: { cpu: number }) => {
        readerCpu.push(m.cpu);
        if (readerCpu.length === receivers) finish();
      });
      children.push(child);
    }
  });
}
