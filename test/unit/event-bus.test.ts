import { describe, expect, it } from 'vitest';
import { createEventBus } from '../../src/events/bus.js';

type Events = { tick: number; word: string };

describe('event bus', () => {
  it('calls the listeners of an event in subscription order, and only those', () => {
    const bus = createEventBus<Events>();
    const seen: string[] = [];
    bus.on('tick', (n) => seen.push(`a${n}`));
    bus.on('word', (w) => seen.push(`w${w}`));
    bus.on('tick', (n) => seen.push(`b${n}`));
    bus.emit('tick', 1);
    expect(seen).toEqual(['a1', 'b1']);
    expect(bus.listenerCount('tick')).toBe(2);
  });

  it('stops calling a listener once its subscription is disposed, also with `using`', () => {
    const bus = createEventBus<Events>();
    const seen: number[] = [];
    const sub = bus.on('tick', (n) => seen.push(n));
    bus.emit('tick', 1);
    sub.dispose();
    sub.dispose();
    bus.emit('tick', 2);
    {
      using _scoped = bus.on('tick', (n) => seen.push(n * 10));
      bus.emit('tick', 3);
    }
    bus.emit('tick', 4);
    expect(seen).toEqual([1, 30]);
    expect(bus.listenerCount('tick')).toBe(0);
  });

  it('keeps calling the other listeners when one throws, and reports the error', () => {
    const errors: Array<[string, unknown]> = [];
    const bus = createEventBus<Events>({ onListenerError: (name, err) => errors.push([name, err]) });
    const seen: number[] = [];
    bus.on('tick', () => {
      throw new Error('boom');
    });
    bus.on('tick', (n) => seen.push(n));
    expect(() => bus.emit('tick', 7)).not.toThrow();
    expect(seen).toEqual([7]);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.[0]).toBe('tick');
  });

  it('finishes an emit with the listeners it started with when one subscribes or unsubscribes meanwhile', () => {
    const bus = createEventBus<Events>();
    const seen: string[] = [];
    const late = { dispose: () => {} };
    bus.on('tick', () => {
      seen.push('first');
      bus.on('tick', () => seen.push('added'));
      late.dispose();
    });
    late.dispose = bus.on('tick', () => seen.push('second')).dispose;
    bus.emit('tick', 1);
    expect(seen).toEqual(['first', 'second']);
    seen.length = 0;
    bus.emit('tick', 2);
    expect(seen).toEqual(['first', 'added']);
  });
});
