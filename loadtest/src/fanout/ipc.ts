// A forked harness process with request/reply over IPC (replies come back in request order).
import { type ChildProcess, fork } from 'node:child_process';

export class IpcChild<Req, Rep> {
  private readonly waiting: { resolve: (r: Rep) => void; reject: (e: Error) => void }[] = [];
  private readonly child: ChildProcess;
  private stderr = '';
  readonly name: string;

  constructor(script: string, name: string) {
    this.name = name;
    this.child = fork(script, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      this.stderr = (this.stderr + s).slice(-4000);
    });
    this.child.on('message', (m: Rep) => this.waiting.shift()?.resolve(m));
    this.child.on('exit', (code) => {
      const err = new Error(`${name} exited (${code}) ${this.stderr.trim()}`);
      for (const w of this.waiting.splice(0)) w.reject(err);
    });
  }

  request(req: Req): Promise<Rep> {
    return new Promise((resolve, reject) => {
      if (this.child.exitCode !== null || !this.child.connected) {
        reject(new Error(`${this.name} is not running ${this.stderr.trim()}`));
        return;
      }
      this.waiting.push({ resolve, reject });
      this.child.send(req as object);
    });
  }

  /** Ends the process (SIGKILL after 5 s). */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
