/**
 * A small circuit breaker in front of the origin, per isolate and in memory.
 *
 * closed    — requests go through; `threshold` consecutive failures (the
 *             origin could not be reached, or did not answer in its budget)
 *             open the circuit.
 * open      — every request is answered at once (503 + Retry-After) for
 *             `cooldownMs`, instead of each one waiting out a timeout.
 * half-open — after the cool-down one trial request goes through; the others
 *             still get 503. Its success closes the circuit, its failure opens
 *             it for another cool-down. A trial that never reports back (the
 *             client went away and the isolate dropped the work) expires after
 *             `trialTimeoutMs`, so the breaker can never stay stuck half-open.
 *
 * Any answer from the origin — 404 and 503 included — counts as a success:
 * the origin is there. Only the proxy decides what a failure is.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive failures that open the circuit. */
  threshold: number;
  /** How long the circuit stays open before a trial request, ms. */
  cooldownMs: number;
  /** How long a trial may stay unreported before another is allowed, ms. */
  trialTimeoutMs: number;
  now?: () => number;
  /** Called on every state change (for the log). */
  onChange?: (from: BreakerState, to: BreakerState, failures: number) => void;
}

/** A request may go to the origin; report how it went exactly once. */
export interface Permit {
  readonly trial: boolean;
  success(): void;
  failure(): void;
}

export type Admission = { ok: true; permit: Permit } | { ok: false; retryAfterMs: number };

export class CircuitBreaker {
  private state: BreakerState = 'closed';
  private failures = 0;
  private openedUntil = 0;
  private trialStarted = 0;
  private trialInFlight = false;
  private readonly now: () => number;
  private readonly options: BreakerOptions;

  constructor(options: BreakerOptions) {
    this.options = options;
    if (!(options.threshold >= 1)) throw new Error('CircuitBreaker: threshold must be at least 1');
    this.now = options.now ?? Date.now;
  }

  get current(): BreakerState {
    return this.state;
  }

  /** Ask to send a request to the origin. */
  admit(): Admission {
    const now = this.now();
    if (this.state === 'open') {
      if (now < this.openedUntil) return { ok: false, retryAfterMs: this.openedUntil - now };
      this.transition('half-open');
    }
    if (this.state === 'half-open') {
      if (this.trialInFlight && now - this.trialStarted < this.options.trialTimeoutMs) {
        return { ok: false, retryAfterMs: 1000 };
      }
      this.trialInFlight = true;
      this.trialStarted = now;
      return { ok: true, permit: this.permit(true) };
    }
    return { ok: true, permit: this.permit(false) };
  }

  private permit(trial: boolean): Permit {
    let reported = false;
    const started = this.trialStarted;
    const once = (fn: () => void) => () => {
      if (reported) return;
      reported = true;
      fn();
    };
    return {
      trial,
      success: once(() => {
        // A stale trial (expired and replaced) still proves the origin answers.
        if (trial && started === this.trialStarted) this.trialInFlight = false;
        this.failures = 0;
        if (this.state !== 'closed') this.transition('closed');
      }),
      failure: once(() => {
        if (trial && started === this.trialStarted) this.trialInFlight = false;
        this.failures++;
        if (this.state === 'half-open' ? trial : this.state === 'closed' && this.failures >= this.options.threshold) {
          this.openedUntil = this.now() + this.options.cooldownMs;
          this.transition('open');
        }
      }),
    };
  }

  private transition(to: BreakerState) {
    const from = this.state;
    if (from === to) return;
    this.state = to;
    if (to === 'closed') this.trialInFlight = false;
    this.options.onChange?.(from, to, this.failures);
  }
}
