import { describe, expect, it } from 'vitest';
import { LOCAL_ERROR_LOG_EVERY_MS, LOCAL_ERROR_QUIET_MS, createLocalErrors } from '../../src/health/local-errors.js';
import { probeResult } from '../helpers/fixtures.js';

const emfile = probeResult({ healthy: false, statusCode: null, body: null, errorClass: 'local_error', error: 'connect EMFILE' });

describe('local probe errors', () => {
  it('logs the first one, then at most one line per interval counting those it did not log', () => {
    const local = createLocalErrors();
    expect(local.record(emfile, 0)).toEqual({ unlogged: 0 });
    expect(local.record(emfile, 1000)).toBeNull();
    expect(local.record(emfile, 2000)).toBeNull();
    expect(local.record(emfile, LOCAL_ERROR_LOG_EVERY_MS)).toEqual({ unlogged: 2 });
  });

  it('keeps an episode going while they recur, and ends it after a quiet interval', () => {
    const local = createLocalErrors();
    expect(local.episode(0)).toBeNull();
    local.record(emfile, 1000);
    local.record(emfile, 5000);
    expect(local.episode(6000)).toEqual({ count: 2, since: 1000, lastAt: 5000, last: 'web/127.0.0.1:8001: connect EMFILE' });
    expect(local.episode(5000 + LOCAL_ERROR_QUIET_MS)).toBeNull();
    local.record(emfile, 5000 + LOCAL_ERROR_QUIET_MS + 1);
    expect(local.episode(5000 + LOCAL_ERROR_QUIET_MS + 2)).toMatchObject({ count: 1, since: 5000 + LOCAL_ERROR_QUIET_MS + 1 });
  });
});
