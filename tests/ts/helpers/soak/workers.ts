import { spawnWorker, workerSummary, type WorkerProcess } from '../upload.js';

/** The upload worker processes of a soak, one per slot: started, restarted after a kill, stopped at the end. */
export class WorkerFleet {
  readonly workers: Array<WorkerProcess | undefined> = [];
  private generation = 0;

  constructor(
    readonly size: number,
    private readonly env: Record<string, string>,
  ) {}

  /** Starts a worker in `slot` (a new worker id each time). */
  start(slot: number): WorkerProcess {
    const w = spawnWorker(['--worker-id', `soak-w${slot}-${this.generation++}`], this.env);
    this.workers[slot] = w;
    return w;
  }

  /** Starts every slot and waits until each worker listens. */
  async startAll(): Promise<void> {
    await Promise.all(Array.from({ length: this.size }, (_, i) => this.start(i).line(/listening on upload_queue/, 20_000)));
  }

  /** Starts again every slot whose worker has exited (killed and not yet replaced). */
  restartExited(): void {
    for (let i = 0; i < this.size; i++) if (this.workers[i]!.child.exitCode !== null || this.workers[i]!.child.signalCode !== null) this.start(i);
  }

  /** Graceful stop (SIGTERM) of every worker; each must exit 0 with its summary line. */
  async stopGracefully(): Promise<{ workers: number; badExits: number; summaries: boolean }> {
    const live = this.workers.filter((w): w is WorkerProcess => w !== undefined);
    await Promise.all(live.map((w) => w.line(/listening on upload_queue/, 20_000).catch(() => undefined)));
    for (const w of live) w.child.kill('SIGTERM');
    const exits = await Promise.all(live.map((w) => w.exited));
    const badExits = exits.filter((e) => e.code !== 0).length;
    const summaries = live.map((w) => {
      try {
        return workerSummary(w.output);
      } catch {
        return undefined;
      }
    });
    return { workers: live.length, badExits, summaries: summaries.every(Boolean) };
  }

  killAll(): void {
    for (const w of this.workers) w?.child.kill('SIGKILL');
  }
}
