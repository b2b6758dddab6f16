import { describe, expect, it } from 'vitest';
import { readBusMessage, redactUrl } from './redis.js';

describe('the Redis bus', () => {
  it('takes only the messages medfit sends, checked field by field', () => {
    const id = '0b6f3c1e-8a51-4c0e-9d7e-2f4a5b6c7d8e';
    expect(readBusMessage(JSON.stringify({ t: 'job', id, e: { type: 'status', status: 'running' } }))).toEqual({ t: 'job', id, e: { type: 'status', status: 'running' } });
    expect(readBusMessage(JSON.stringify({ t: 'cancel', id }))).toEqual({ t: 'cancel', id });
    expect(readBusMessage(JSON.stringify({ t: 'models', projectId: 'p', name: 'risk' }))).toEqual({ t: 'models', projectId: 'p', name: 'risk' });
    expect(readBusMessage(JSON.stringify({ t: 'dataset', file: 'datasets/p/d.csv' }))).toEqual({ t: 'dataset', file: 'datasets/p/d.csv' });
    expect(readBusMessage(JSON.stringify({ t: 'keys', extra: 1 }))).toEqual({ t: 'keys' });
    for (const bad of ['', 'null', '"job"', '[]', '{"t":"job","id":"a b","e":{}}', '{"t":"job","id":"x","e":null}', '{"t":"job","id":"x","e":[1]}', '{"t":"cancel"}', '{"t":"cancel","id":"../x"}', '{"t":"models","projectId":"","name":"x"}', '{"t":"dataset","file":7}', '{"t":"shutdown"}', '{"t":"__proto__"}']) {
      expect(readBusMessage(bad), bad).toBeUndefined();
    }
  });

  it('names a Redis URL without its user, password or query', () => {
    expect(redactUrl('redis://:s3cret@redis.internal:6379')).toBe('redis://***@redis.internal:6379');
    expect(redactUrl('rediss://user:s3cret@redis.internal:6380/2')).toBe('rediss://***@redis.internal:6380/2');
    expect(redactUrl('redis://redis.internal:6379/0?password=s3cret')).toBe('redis://redis.internal:6379/0');
    expect(redactUrl('not a url')).toBe('the configured URL');
  });
});
