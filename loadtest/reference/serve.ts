// How the reference servers listen: PORT/HOST from the environment (0 = any free port), one JSON
// line `{"event":"listening","port":N}` on stdout (what the bench waits for), and SIGTERM/SIGINT
// close every connection and exit 0.
import type { Server } from 'node:http';

export function serve(server: Server): void {
  server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    process.stdout.write(`${JSON.stringify({ event: 'listening', port })}\n`);
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      server.closeAllConnections();
      server.close(() => process.exit(0));
    });
  }
}
