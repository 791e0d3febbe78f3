import { describe, expect, it } from 'vitest';
import { createBatchQueue } from '../../src/passive/batch-queue.js';

/** A queue whose turns run only when the test says so. */
function manual(capacity: number, batchSize: number, process: (batch: number[]) => void = () => {}) {
  const turns: (() => void)[] = [];
  const batches: number[][] = [];
  const queue = createBatchQueue<number>({
    capacity,
    batchSize,
    schedule: (turn) => turns.push(turn),
    process: (batch) => {
      batches.push(batch);
      process(batch);
    },
  });
  const runTurn = () => turns.shift()?.();
  return { queue, turns, batches, runTurn };
}

describe('bounded batch queue', () => {
  it('hands items on in order, at most batchSize per turn, one turn scheduled at a time', () => {
    const { queue, turns, batches, runTurn } = manual(100, 3);
    for (let i = 0; i < 7; i++) queue.push(i);
    expect(turns).toHaveLength(1);
    runTurn();
    expect(batches).toEqual([[0, 1, 2]]);
    expect(turns).toHaveLength(1);
    runTurn();
    runTurn();
    expect(batches).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    expect(turns).toHaveLength(0);
    expect(queue.size()).toBe(0);
  });

  it('refuses items beyond its capacity and takes them again once drained', () => {
    const { queue, runTurn } = manual(4, 2);
    expect([1, 2, 3, 4, 5, 6].map((i) => queue.push(i))).toEqual([true, true, true, true, false, false]);
    runTurn();
    expect(queue.push(7)).toBe(true);
    expect(queue.size()).toBe(3);
  });

  it('wraps around its ring without losing order', () => {
    const { queue, batches, runTurn } = manual(3, 2);
    queue.push(1);
    queue.push(2);
    queue.push(3);
    runTurn();
    queue.push(4);
    queue.push(5);
    runTurn();
    runTurn();
    expect(batches.flat()).toEqual([1, 2, 3, 4, 5]);
  });

  it('keeps draining after a batch whose processing threw', () => {
    const { queue, batches, runTurn } = manual(10, 1, (b) => {
      if (b[0] === 1) throw new Error('boom');
    });
    queue.push(1);
    queue.push(2);
    expect(() => runTurn()).toThrow('boom');
    runTurn();
    expect(batches).toEqual([[1], [2]]);
  });

  it('forgets waiting items on clear; a turn already scheduled then does nothing', () => {
    const { queue, batches, runTurn } = manual(10, 5);
    queue.push(1);
    queue.clear();
    runTurn();
    expect(batches).toEqual([]);
    queue.push(2);
    runTurn();
    expect(batches).toEqual([[2]]);
  });
});
