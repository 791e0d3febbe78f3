/**
 * Runs `expected_body` regular expressions against response bodies in a worker thread, never on
 * the event loop.
 *
 * The patterns run on V8's linear-time engine (src/config/expected-body.ts explains the choice),
 * so no pattern the config accepts can backtrack exponentially. Linear time still grows with the
 * pattern's size: measured on a 4 KB body, a typical pattern takes microseconds but a contrived
 * 160-character one ~150 ms and the longest accepted several seconds. On the event loop that
 * would delay every probe, nginx update and /healthz of every app; here it only occupies the
 * worker. A match that runs past its budget (MATCH_BUDGET_MS) is stopped by terminating the
 * worker (a fresh one takes the queue), and its pattern is suspended for SUSPEND_MS so one heavy
 * pattern cannot keep the worker busy for everyone.
 *
 * The cost on the event loop is one message each way: 20 to 60 µs a match measured, about what
 * the linear engine itself takes to scan 4 KB for a pattern that is not there (~300 µs). Plain
 * substrings never come here.
 *
 * A match that cannot be run (budget, suspension, worker failure) is the sidecar's problem, not
 * the backend's: the caller reports it as a local error, which health and breakers ignore.
 */
import { Worker } from 'node:worker_threads';
import type { Clock, TimerHandle } from '../clock.js';

/** Longest one match may take before the worker is replaced. */
export const MATCH_BUDGET_MS = 250;
/** How long a pattern that ran past its budget is not run again. */
export const SUSPEND_MS = 60_000;
/**
 * Longest a worker may take to start while matches wait for it (it starts in tens of ms; a
 * loaded machine takes a few hundred): probes do not put their own deadline on a match, so this
 * is what keeps one from waiting forever.
 */
export const WORKER_START_LIMIT_MS = 5_000;

/** Whether the body matched, or why the match could not be run (text for a local error). */
export type MatchResult = boolean | string;

export interface BodyMatcher {
  /** Matches `body` against the checked pattern `/source/flags` (the `l` flag is added). */
  match(source: string, flags: string, body: string): Promise<MatchResult>;
  /** Starts the worker now rather than at the first match (which would wait for it). */
  warm(): void;
  /** Stops the worker; matches still waiting resolve with an error text. */
  close(): Promise<void>;
}

export interface BodyMatcherOptions {
  clock: Clock;
  budgetMs?: number;
  suspendMs?: number;
}

interface Pending {
  key: string;
  message: { id: number; source: string; flags: string; body: string };
  resolve(result: MatchResult): void;
}

type FromWorker = { id: number; matched: boolean } | { id: number; error: string };

// CommonJS, evaluated: no file to find next to this one, whether it runs from dist/ or src/.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
try { new RegExp('', 'l'); } catch { require('node:v8').setFlagsFromString('--enable-experimental-regexp-engine'); }
const compiled = new Map();
parentPort.on('message', ({ id, source, flags, body }) => {
  try {
    const key = flags + '/' + source;
    let re = compiled.get(key);
    if (re === undefined) {
      if (compiled.size >= 256) compiled.clear();
      re = new RegExp(source, flags + 'l');
      compiled.set(key, re);
    }
    parentPort.postMessage({ id, matched: re.test(body) });
  } catch (err) {
    parentPort.postMessage({ id, error: String((err && err.message) || err) });
  }
});`;

/** The worker's heap: enough for any accepted pattern's automaton on a 4 KB body. */
const WORKER_LIMITS = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16 };

/** Creates the matcher; its worker starts with the first match (or warm()) and is replaced when it fails. */
export function createBodyMatcher(opts: BodyMatcherOptions): BodyMatcher {
  return new WorkerMatcher(opts.clock, opts.budgetMs ?? MATCH_BUDGET_MS, opts.suspendMs ?? SUSPEND_MS);
}

class WorkerMatcher implements BodyMatcher {
  constructor(
    readonly clock: Clock,
    readonly budgetMs: number,
    readonly suspendMs: number,
  ) {}

  /** Sent, not yet answered, in order: the worker answers in the order it was asked. */
  readonly queue: Pending[] = [];
  /** Patterns that ran past their budget, until when they are not run. */
  readonly suspended = new Map<string, number>();
  worker: Worker | null = null;
  /** The worker is running: its start-up time is not charged to the first match's budget. */
  online = false;
  watchdog: TimerHandle | null = null;
  nextId = 1;
  closed = false;

  match(source: string, flags: string, body: string): Promise<MatchResult> {
    if (this.closed) return Promise.resolve('expected_body matcher closed');
    const key = `${flags}/${source}`;
    const until = this.suspended.get(key);
    if (until !== undefined) {
      if (this.clock.now() < until) {
        return Promise.resolve(`expected_body /${source}/${flags} is suspended after running past its ${this.budgetMs} ms budget`);
      }
      this.suspended.delete(key);
    }
    return new Promise((resolve) => this.send({ key, message: { id: this.nextId++, source, flags, body }, resolve }));
  }

  warm(): void {
    if (!this.closed) this.ensureWorker();
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    this.failAll('expected_body matcher closed');
    if (w) await w.terminate();
  }

  send(p: Pending): void {
    const w = this.ensureWorker();
    if (typeof w === 'string') return p.resolve(w);
    this.queue.push(p);
    w.postMessage(p.message);
    if (this.queue.length === 1) this.arm();
  }

  /**
   * The head of the queue is the match running now: it started when the one before it answered.
   * Before the worker is online, the watchdog is on its start-up instead.
   */
  arm(): void {
    this.disarm();
    if (this.queue.length === 0) return;
    this.watchdog = this.online
      ? this.clock.setTimeout(() => this.overrun(), this.budgetMs)
      : this.clock.setTimeout(() => this.startFailed(), WORKER_START_LIMIT_MS);
  }

  startFailed(): void {
    this.watchdog = null;
    this.stopWorker();
    this.failAll(`expected_body matcher did not start within ${WORKER_START_LIMIT_MS} ms`);
  }

  disarm(): void {
    if (this.watchdog !== null) this.clock.clearTimeout(this.watchdog);
    this.watchdog = null;
  }

  overrun(): void {
    this.watchdog = null;
    const head = this.queue.shift();
    if (!head) return;
    this.suspended.set(head.key, this.clock.now() + this.suspendMs);
    head.resolve(
      `expected_body /${head.message.source}/${head.message.flags} took longer than ${this.budgetMs} ms to match; ` +
        `it is not run for the next ${Math.round(this.suspendMs / 1000)} s (simplify the pattern)`,
    );
    // Terminating is the only way to stop a running match; the rest go to a fresh worker.
    this.stopWorker();
    for (const p of this.queue.splice(0)) this.send(p);
  }

  failAll(why: string): void {
    this.disarm();
    for (const p of this.queue.splice(0)) p.resolve(why);
  }

  stopWorker(): void {
    const w = this.worker;
    this.worker = null;
    this.online = false;
    if (w) void w.terminate();
  }

  /** The worker, started if need be; an error text when it cannot start (e.g. EMFILE). */
  ensureWorker(): Worker | string {
    if (this.worker !== null) return this.worker;
    try {
      this.worker = this.startWorker();
      return this.worker;
    } catch (err) {
      return `expected_body matcher could not start: ${(err as Error).message}`;
    }
  }

  startWorker(): Worker {
    const w = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: WORKER_LIMITS });
    // A daemon stops through close(); a one-shot command must not wait for the worker.
    w.unref();
    const gone = (why: string) => {
      if (w !== this.worker) return;
      this.worker = null;
      this.online = false;
      this.failAll(why);
    };
    w.on('online', () => {
      if (w !== this.worker) return;
      this.online = true;
      this.arm();
    });
    w.on('message', (msg: FromWorker) => {
      const head = this.queue[0];
      if (w !== this.worker || head?.message.id !== msg.id) return;
      this.queue.shift();
      head.resolve('matched' in msg ? msg.matched : `expected_body could not be matched: ${msg.error}`);
      this.arm();
    });
    w.on('error', (err) => gone(`expected_body matcher failed: ${err.message}`));
    w.on('exit', () => gone('expected_body matcher stopped'));
    return w;
  }
}
