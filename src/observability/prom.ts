/**
 * The parts of prom-client the metrics use, loaded from its own files rather than its index:
 * the index also loads its Pushgateway, and with it node:https, node:tls and OpenSSL's TLS code
 * (+4-5 MB of RSS in a daemon that probes plain HTTP), and its cluster aggregator, none of them
 * used. prom-client 15 has no "exports" map, so these are its published files; the types are its
 * index's.
 */
import { createRequire } from 'node:module';
import type * as client from 'prom-client';

const load = createRequire(import.meta.url);

export const Registry = load('prom-client/lib/registry') as typeof client.Registry;
export const Counter = load('prom-client/lib/counter') as typeof client.Counter;
export const Gauge = load('prom-client/lib/gauge') as typeof client.Gauge;
export const Histogram = load('prom-client/lib/histogram') as typeof client.Histogram;
export const collectDefaultMetrics = load('prom-client/lib/defaultMetrics') as typeof client.collectDefaultMetrics;

export type Registry = client.Registry;
export type Counter<T extends string = string> = client.Counter<T>;
export type Gauge<T extends string = string> = client.Gauge<T>;
export type Histogram<T extends string = string> = client.Histogram<T>;
export type Metric<T extends string = string> = client.Metric<T>;
export type MetricValue<T extends string = string> = client.MetricValue<T>;
