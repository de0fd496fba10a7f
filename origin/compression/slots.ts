/**
 * The cap on concurrent compressions: `max` places, a wait queue of at most
 * `queueMax` requests, refusal past that. A request names the NAR (its cache
 * key): while one compression of a key runs, another request for the same key
 * waits even if a place is free — so across cluster workers, which cannot share
 * an in-process flight, a NAR is still compressed once; the waiter then finds
 * it in the on-disk cache.
 *
 * One algorithm, two homes: in-process when `workers = 1`, in the cluster
 * primary otherwise (cluster-slots.ts carries the requests over IPC).
 */

export class CompressionRefusedError extends Error {
  override name = 'CompressionRefusedError';
}

export interface SlotRequest {
  /** Resolves once the request has a place (running or in the queue); rejects with CompressionRefusedError when the queue is full. */
  admitted: Promise<void>;
  /** Resolves with the release function once the compression may run. Never resolves for a refused or cancelled request. */
  granted: Promise<() => void>;
  /** Gives up the place (queued) or the slot (granted); idempotent. */
  cancel(): void;
}

export interface Slots {
  request(key: string): SlotRequest;
}

/** The bookkeeping, independent of who asks: owners are opaque (a worker id in the primary). */
export class SlotTable<Owner = unknown> {
  private readonly runningKeys = new Map<string, number>();
  private running = 0;
  private readonly queue: { key: string; owner: Owner; grant: () => void }[] = [];

  private readonly max: number;
  private readonly queueMax: number;

  constructor(max: number, queueMax: number) {
    this.max = max;
    this.queueMax = queueMax;
  }

  get runningCount(): number {
    return this.running;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /** 'granted' (grant was called), 'queued', or 'refused'. */
  request(key: string, owner: Owner, grant: () => void): 'granted' | 'queued' | 'refused' {
    if (this.running < this.max && !this.runningKeys.has(key)) {
      this.start(key);
      grant();
      return 'granted';
    }
    if (this.queue.length >= this.queueMax) return 'refused';
    this.queue.push({ key, owner, grant });
    return 'queued';
  }

  /** Removes a queued request; true when it was queued. */
  dequeue(grant: () => void): boolean {
    const i = this.queue.findIndex((q) => q.grant === grant);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }

  release(key: string): void {
    const n = this.runningKeys.get(key) ?? 0;
    if (n <= 1) this.runningKeys.delete(key);
    else this.runningKeys.set(key, n - 1);
    this.running--;
    this.pump();
  }

  /** Everything an owner holds (a worker that died): queued requests dropped, running keys released. */
  forget(owner: Owner, runningKeys: string[]): void {
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.owner === owner) this.queue.splice(i, 1);
    for (const k of runningKeys) this.release(k);
  }

  private start(key: string) {
    this.running++;
    this.runningKeys.set(key, (this.runningKeys.get(key) ?? 0) + 1);
  }

  private pump() {
    for (let i = 0; i < this.queue.length && this.running < this.max; ) {
      const q = this.queue[i]!;
      if (this.runningKeys.has(q.key)) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.start(q.key);
      q.grant();
    }
  }
}

/** A rejected promise that does not count as unhandled until someone awaits it. */
export function refused(): Promise<never> {
  const p = Promise.reject(new CompressionRefusedError('compression queue full'));
  p.catch(() => {});
  return p;
}

/** Slots for one process. */
export function createLocalSlots(max: number, queueMax: number): Slots & { table: SlotTable } {
  const table = new SlotTable(max, queueMax);
  return {
    table,
    request(key) {
      let release: (() => void) | undefined;
      let state: 'queued' | 'granted' | 'done' = 'queued';
      let resolveGranted!: (r: () => void) => void;
      const granted = new Promise<() => void>((r) => (resolveGranted = r));
      const grant = () => {
        state = 'granted';
        let released = false;
        release = () => {
          if (released) return;
          released = true;
          state = 'done';
          table.release(key);
        };
        resolveGranted(release);
      };
      const answer = table.request(key, undefined, grant);
      return {
        admitted: answer === 'refused' ? refused() : Promise.resolve(),
        granted,
        cancel() {
          if (state === 'queued') {
            table.dequeue(grant);
            state = 'done';
          } else if (state === 'granted') release!();
        },
      };
    },
  };
}
