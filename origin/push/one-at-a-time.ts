/** Runs the calls with the same key one after another in this process (other keys run meanwhile). */
export function oneAtATime(): <T>(key: string, fn: () => Promise<T>) => Promise<T> {
  const running = new Map<string, Promise<unknown>>();
  return async function serially<T>(key: string, fn: () => Promise<T>): Promise<T> {
    while (running.has(key)) await running.get(key)!.catch(() => {});
    const p = fn();
    running.set(key, p);
    try {
      return await p;
    } finally {
      running.delete(key);
    }
  };
}
