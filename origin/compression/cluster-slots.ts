/**
 * The compression cap across cluster workers: the primary keeps the one
 * SlotTable, workers ask it over the cluster IPC channel. A worker that dies
 * gives its places back. Chosen over a file lock because the primary already
 * exists, sees worker deaths at once, and can queue fairly; a lock file would
 * need polling and stale-lock recovery.
 */
import type { Worker } from 'node:cluster';
import { refused, SlotTable, type Slots } from './slots.ts';

type SlotMsg =
  | { type: 'eris:slot?'; id: number; key: string }
  | { type: 'eris:slot-cancel'; id: number }
  | { type: 'eris:slot'; id: number; state: 'granted' | 'queued' | 'refused' };

const isSlotMsg = (m: unknown): m is SlotMsg => typeof m === 'object' && m !== null && String((m as { type?: unknown }).type).startsWith('eris:slot');

/** Primary side: call with every worker message; `exited` when a worker is gone. */
export function createSlotServer(max: number, queueMax: number) {
  const table = new SlotTable<number>(max, queueMax);
  // Per worker: request id → { key, grant function, granted? }
  const held = new Map<number, Map<number, { key: string; grant: () => void; granted: boolean }>>();
  return {
    table,
    /** Handles a worker's message; false when it is not about slots. */
    onMessage(from: Worker, msg: unknown): boolean {
      if (!isSlotMsg(msg)) return false;
      let mine = held.get(from.id);
      if (!mine) held.set(from.id, (mine = new Map()));
      if (msg.type === 'eris:slot?') {
        const entry = {
          key: msg.key,
          granted: false,
          grant: () => {
            entry.granted = true;
            if (from.isConnected()) from.send({ type: 'eris:slot', id: msg.id, state: 'granted' } satisfies SlotMsg);
          },
        };
        mine.set(msg.id, entry);
        const answer = table.request(msg.key, from.id, entry.grant);
        if (answer === 'refused') mine.delete(msg.id);
        if (answer !== 'granted' && from.isConnected()) from.send({ type: 'eris:slot', id: msg.id, state: answer } satisfies SlotMsg);
      } else if (msg.type === 'eris:slot-cancel') {
        const entry = mine.get(msg.id);
        if (!entry) return true;
        mine.delete(msg.id);
        if (entry.granted) table.release(entry.key);
        else table.dequeue(entry.grant);
      }
      return true;
    },
    exited(worker: Worker): void {
      const mine = held.get(worker.id);
      held.delete(worker.id);
      if (!mine) return;
      table.forget(worker.id, [...mine.values()].filter((e) => e.granted).map((e) => e.key));
    },
  };
}

/** Worker side: Slots served by the primary. */
export function createClusterSlots(): Slots {
  let nextId = 1;
  const waiting = new Map<number, { admit: (ok: boolean) => void; grant: () => void }>();
  process.on('message', (msg: unknown) => {
    if (!isSlotMsg(msg) || msg.type !== 'eris:slot') return;
    const w = waiting.get(msg.id);
    if (!w) return;
    if (msg.state === 'refused') {
      waiting.delete(msg.id);
      w.admit(false);
    } else {
      w.admit(true);
      if (msg.state === 'granted') w.grant();
    }
  });
  return {
    request(key) {
      const id = nextId++;
      let state: 'asked' | 'granted' | 'done' = 'asked';
      let admit!: (ok: boolean) => void;
      let resolveGranted!: (release: () => void) => void;
      const admitted = new Promise<boolean>((r) => (admit = r)).then((ok) => (ok ? undefined : refused()));
      admitted.catch(() => {});
      const granted = new Promise<() => void>((r) => (resolveGranted = r));
      const cancel = () => {
        if (state === 'done') return;
        state = 'done';
        waiting.delete(id);
        process.send?.({ type: 'eris:slot-cancel', id } satisfies SlotMsg);
      };
      waiting.set(id, {
        admit,
        grant: () => {
          waiting.delete(id);
          if (state !== 'asked') return;
          state = 'granted';
          resolveGranted(cancel);
        },
      });
      process.send!({ type: 'eris:slot?', id, key } satisfies SlotMsg);
      return { admitted, granted, cancel };
    },
  };
}
