/** autocannon, typed: it ships no types and @types/autocannon is not installed (the part the benches use). */
import { createRequire } from 'node:module';

export interface AutocannonOptions {
  url: string;
  method: 'POST' | 'GET';
  headers: Record<string, string>;
  body?: string;
  setupClient?: string;
  connections: number;
  pipelining: number;
  duration: number;
  workers?: number;
}
export interface Histogram {
  average: number;
  mean: number;
  p50: number;
  p99: number;
}
export interface AutocannonResult {
  requests: Histogram & { total: number };
  latency: Histogram;
  non2xx: number;
  errors: number;
  timeouts: number;
  '2xx': number;
}
export const autocannon = createRequire(import.meta.url)('autocannon') as (opts: AutocannonOptions) => Promise<AutocannonResult>;
