import { describe, expect, it } from 'vitest';
import { pickFreePort, unusedPorts } from '../../src/recovery/ports.js';

describe('ports for new replicas', () => {
  it('lists the range lowest first without the ports replicas use', () => {
    expect([...unusedPorts([20000, 20005], [20000, 20002, 30000])]).toEqual([20001, 20003, 20004, 20005]);
    expect([...unusedPorts([20000, 20001], [20000, 20001])]).toEqual([]);
  });

  it('skips ports that cannot be bound and gives up when none is left', async () => {
    const tried: number[] = [];
    const bindable = async (p: number) => (tried.push(p), p === 20003);
    expect(await pickFreePort([20000, 20005], [20001], bindable)).toBe(20003);
    expect(tried).toEqual([20000, 20002, 20003]);
    expect(await pickFreePort([20000, 20002], [], async () => false)).toBeNull();
  });
});
