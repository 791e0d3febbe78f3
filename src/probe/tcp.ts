/**
 * TCP prober on node:net: the backend is healthy when it accepts a connection within
 * timeout_seconds and, if expected_response is set, sends it back (after probe_data, if set).
 */
import { connect } from 'node:net';
import { createSystemClock, type Clock } from '../clock.js';
import type { Backend } from '../model.js';
import { classifyError, errorText, failure, runAttempts, success, timeoutOutcome, type AttemptOutcome } from './outcome.js';
import { armDeadline, createStallLog, lateNote, type StallLog } from './stalls.js';
import type { Prober } from './types.js';

/** Bytes of reply searched for expected_response at most. */
const RESPONSE_READ_CAP = 4096;

export interface TcpProberOptions {
  clock?: Clock;
  /** Event-loop stalls seen by the daemon's timers; a timeout they caused is not the backend's. */
  stalls?: StallLog;
}

/** Creates the TCP prober. It holds no connections between probes. */
export function createTcpProber(opts: TcpProberOptions = {}): Prober {
  const clock = opts.clock ?? createSystemClock();
  const stalls = opts.stalls ?? createStallLog();
  return {
    probe: (backend) => runAttempts(backend, 'tcp', clock, () => attempt(backend, clock, stalls)),
  };
}

function attempt(backend: Backend, clock: Clock, stalls: StallLog): Promise<AttemptOutcome> {
  const h = backend.health;
  const timeoutMs = h.timeout_seconds * 1000;
  const expected = h.expected_response === null ? null : Buffer.from(h.expected_response);
  return new Promise((resolve) => {
    let connected = false;
    let done = false;
    let received = Buffer.alloc(0);
    const socket = connect({ host: backend.host, port: backend.port });
    const finish = (outcome: AttemptOutcome): void => {
      if (done) return;
      done = true;
      deadline.cancel();
      socket.destroy();
      resolve(outcome);
    };
    const noResponse = (why: string): AttemptOutcome =>
      failure('unexpected_response', `expected response ${JSON.stringify(h.expected_response)} not received: ${why}`);
    const deadline = armDeadline({
      clock,
      timeoutMs,
      stalls,
      onExpire: (verdict, givenBackMs) => {
        const after = `after ${timeoutMs} ms${lateNote(givenBackMs)}`;
        finish(
          connected
            ? timeoutOutcome(verdict, noResponse(`timeout ${after}`).error!, 'unexpected_response')
            : timeoutOutcome(verdict, `connect timeout ${after}`),
        );
      },
    });

    socket.once('connect', () => {
      connected = true;
      if (h.probe_data !== null) {
        socket.write(h.probe_data, (err) => {
          if (err) finish(failure(classifyError(err), errorText(err)));
          else if (!expected) finish(success());
        });
      } else if (!expected) {
        finish(success());
      }
    });
    socket.on('data', (chunk: Buffer) => {
      if (!expected) return;
      received = Buffer.concat([received, chunk]);
      if (received.includes(expected)) finish(success());
      else if (received.length >= RESPONSE_READ_CAP) finish(noResponse(`not in the first ${RESPONSE_READ_CAP} bytes`));
    });
    socket.on('error', (err) => {
      const errorClass = classifyError(err);
      // A local error is never the backend's missing reply.
      const waited = connected && expected && errorClass !== 'local_error';
      finish(waited ? noResponse(errorText(err)) : failure(errorClass, errorText(err)));
    });
    socket.on('close', () => {
      finish(connected && expected ? noResponse('connection closed') : failure('connection_reset', 'connection closed'));
    });
  });
}
