/**
 * A bounded FIFO drained in batches, one batch per scheduled turn. The receiver schedules turns
 * with setImmediate, which runs in the event loop's check phase: between two batches the loop
 * goes round through its timers phase, so a probe timer that fell due waits for at most one
 * batch, never for the whole backlog. Items beyond `capacity` are refused (the caller counts
 * them): memory and backlog stay bounded however fast lines arrive.
 */

export interface BatchQueueOptions<T> {
  /** Items held at most; push() refuses more. */
  capacity: number;
  /** Items handed to `process` per turn at most. */
  batchSize: number;
  /** Runs `turn` later (setImmediate in the daemon; a list the test runs by hand). */
  schedule(turn: () => void): void;
  /** Handles one batch. Must not throw (the receiver wraps its own work). */
  process(batch: T[]): void;
}

export interface BatchQueue<T> {
  /** Queues one item; false when the queue is full and the item was refused. */
  push(item: T): boolean;
  /** Items waiting now. */
  size(): number;
  /** Forgets every waiting item; a turn already scheduled finds nothing to do. */
  clear(): void;
}

/** A ring buffer of `capacity` slots with batched, scheduled draining. */
export function createBatchQueue<T>(opts: BatchQueueOptions<T>): BatchQueue<T> {
  const slots: (T | undefined)[] = new Array<T | undefined>(opts.capacity);
  let head = 0;
  let count = 0;
  let scheduled = false;

  const turn = () => {
    scheduled = false;
    const n = Math.min(count, opts.batchSize);
    if (n === 0) return;
    const batch: T[] = new Array<T>(n);
    for (let i = 0; i < n; i++) {
      batch[i] = slots[head] as T;
      slots[head] = undefined;
      head = (head + 1) % opts.capacity;
    }
    count -= n;
    // Scheduled before processing, so a batch that throws cannot strand the rest.
    if (count > 0) {
      scheduled = true;
      opts.schedule(turn);
    }
    opts.process(batch);
  };

  return {
    push(item) {
      if (count >= opts.capacity) return false;
      slots[(head + count) % opts.capacity] = item;
      count++;
      if (!scheduled) {
        scheduled = true;
        opts.schedule(turn);
      }
      return true;
    },
    size: () => count,
    clear() {
      slots.fill(undefined);
      head = 0;
      count = 0;
    },
  };
}
