import { describe, expect, it } from 'vitest';
import { workerExecArgv } from '../../src/worker-module.js';

describe('worker node options', () => {
  it('are inherited, V8 options included, when the process runs a script', () => {
    expect(workerExecArgv(['--max-semi-space-size=8', '--heap-growing-percent=30', '--no-allocation-site-pretenuring', '--enable-experimental-regexp-engine'])).toBeUndefined();
    expect(workerExecArgv([])).toBeUndefined();
  });

  it('are none when the process runs code from -e, -p or with --input-type, which a worker cannot take', () => {
    expect(workerExecArgv(['--input-type=module', '--max-semi-space-size=8', '-e', 'import("x")'])).toEqual([]);
    expect(workerExecArgv(['--print', '1+1'])).toEqual([]);
    expect(workerExecArgv(['--eval=1'])).toEqual([]);
  });
});
