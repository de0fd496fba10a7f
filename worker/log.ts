/** The edge's log: one JSON object per line (Workers Logs / `wrangler tail` / wrangler dev's output). */
export type Log = (line: Record<string, unknown>) => void;

export const consoleLog: Log = (line) => console.log(JSON.stringify(line));

/** The edge's clock, in ms (injected so tests can move time). */
export type Clock = () => number;
