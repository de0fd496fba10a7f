/** One finding of `eris doctor`: one line of its output. */
export interface Check {
  status: 'ok' | 'FAIL' | 'skip';
  /** What was checked, e.g. `key /etc/eris/signing-key.sec`. */
  what: string;
  /** The finding, in plain words; for a FAIL also what to do. */
  detail: string;
}
