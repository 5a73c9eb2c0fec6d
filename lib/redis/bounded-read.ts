// Reads of values anyone who can write to the Redis may have written: never a whole value
// before its size is known. The size is checked on the server, by script, and a value over the
// cap comes back as its length instead; keys are listed by SCAN (never KEYS, which blocks the
// server) up to a count.
import type { Redis } from 'ioredis';

/**
 * Reads named fields of hashes without reading a large one whole: per key, its type, then per
 * field the value, or its length when over ARGV[1] bytes (a number, not a string).
 */
const READ_FIELDS = `local out = {}
local cap = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local t = redis.call('type', key).ok
  local row = {t}
  if t == 'hash' then
    for j = 2, #ARGV do
      local n = redis.call('hstrlen', key, ARGV[j])
      if n > cap then row[j] = n else row[j] = redis.call('hget', key, ARGV[j]) end
    end
  end
  out[i] = row
end
return out`;

/**
 * Reads string keys without reading a large one whole: per key {length, pttl, value}, the
 * value only when at most ARGV[1] bytes (a length of -1: no such key; -2: not a string).
 */
const READ_STRINGS = `local out = {}
for i, key in ipairs(KEYS) do
  local t = redis.call('type', key).ok
  if t == 'none' then out[i] = {-1, -2, false}
  elseif t ~= 'string' then out[i] = {-2, redis.call('pttl', key), false}
  else
    local n = redis.call('strlen', key)
    local v = false
    if n <= tonumber(ARGV[1]) then v = redis.call('get', key) end
    out[i] = {n, redis.call('pttl', key), v}
  end
end
return out`;

/** Per key: its type, then each field's value, or its length in bytes when over the cap. */
export type HashRow = [type: string, ...values: (string | number | null)[]];

/** Per key: its length (-1 none, -2 not a string), its pttl, and its value when within the cap. */
export type StringRead = [length: number, pttl: number, value: string | null];

/** The keys matching `pattern`, by SCAN; past `max` it stops. */
export async function scanKeys(redis: Redis, pattern: string, max: number): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0' && keys.length < max);
  return keys;
}

/** `fields` of each hash in `keys`, each value at most `maxBytes` (else its length). */
export async function readHashFields(
  redis: Redis,
  keys: readonly string[],
  maxBytes: number,
  fields: readonly string[],
): Promise<HashRow[]> {
  if (keys.length === 0) return [];
  return (await redis.eval(READ_FIELDS, keys.length, ...keys, String(maxBytes), ...fields)) as HashRow[];
}

/** String keys: length, pttl, and the value when at most `maxBytes`. */
export async function readStrings(redis: Redis, keys: readonly string[], maxBytes: number): Promise<StringRead[]> {
  if (keys.length === 0) return [];
  return (await redis.eval(READ_STRINGS, keys.length, ...keys, String(maxBytes))) as StringRead[];
}
