/**
 * The prober contract. A probe's outcome is data: a failing, unreachable or misbehaving backend
 * yields a ProbeResult with healthy=false, never a rejected promise.
 */
import type { Backend, ProbeResult } from '../model.js';

/** Checks one backend once (with the configured retries). */
export interface Prober {
  /** Never rejects: every failure is a result with healthy=false, errorClass and error text. */
  probe(backend: Backend): Promise<ProbeResult>;
}
