// What one socket.write costs on this machine, with nothing else in the way: N loopback sockets,
// each written `bytes` bytes once per pass (a bare loop, no HTTP, no SSE), receivers that read and
// drop in `receivers` child processes. Prints the wall and CPU time of a pass and per write: the
// floor under any fan-out that writes once per subscriber.
//   node loadtest/loopback-write-cost.ts [sockets 10000] [bytes 111] [receivers 2] [passes 30]
import { fork } from 'node:child_process';
import net from 'node:net';

const PAUSE_MS = 100;

if (process.argv[2] === '--receiver') {
  const [port, count] = [Number(process.argv[3]), Number(process.argv[4])];
  for (let i = 0; i < count; i++) {
    if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('data', () => {});
    s.on('error', () => {});
  }
} else {
  const [sockets, bytes, receivers, passes] = [
    Number(process.argv[2] ?? 10_000),
    Number(process.argv[3] ?? 111),
    Number(process.argv[4] ?? 2),
    Number(process.argv[5] ?? 30),
  ];
  if (![sockets, bytes, receivers, passes].every((n) => Number.isInteger(n) && n > 0)) {
    process.stderr.write(
      'usage: node loadtest/loopback-write-cost.ts [sockets] [bytes] [receivers] [passes]\n',
    );
    process.exit(2);
  }
  const open: net.Socket[] = [];
  const children: ReturnType<typeof fork>[] = [];
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    open.push(s);
    if (open.length === sockets) void measure();
  });
  server.listen({ port: 0, host: '127.0.0.1', backlog: 8192 }, () => {
    const { port } = server.address() as net.AddressInfo;
    const per = Math.ceil(sockets / receivers);
    for (let i = 0; i < receivers; i++) {
      const n = Math.min(per, sockets - i * per);
      children.push(fork(import.meta.filename, ['--receiver', String(port), String(n)]));
    }
  });
  const measure = async () => {
    await new Promise((r) => setTimeout(r, 500));
    const buf = Buffer.alloc(bytes, 97);
    const wall: number[] = [];
    const cpu: number[] = [];
    for (let p = 0; p < passes; p++) {
      const t = performance.now();
      const c = process.cpuUsage();
      for (const s of open) s.write(buf);
      const used = process.cpuUsage(c);
      wall.push(performance.now() - t);
      cpu.push((used.user + used.system) / 1000);
      await new Promise((r) => setTimeout(r, PAUSE_MS));
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const w = median(wall);
    const c = median(cpu);
    process.stdout.write(
      `${sockets} sockets x ${bytes} B, ${receivers} receiver process(es), ${passes} passes: ` +
        `pass wall p50 ${w.toFixed(1)} ms (max ${Math.max(...wall).toFixed(1)}), CPU p50 ${c.toFixed(1)} ms; ` +
        `${((1000 * c) / sockets).toFixed(1)} us of CPU per write\n`,
    );
    for (const child of children) child.kill();
    for (const s of open) s.destroy();
    server.close();
  };
}
