-- Record a failed attempt: retry later with exponential backoff, defer (Retry), or fail for good.
-- A defer with a limit key (RateLimited) holds every job carrying that key until the delay ends.
-- KEYS: 1 job, 2 active, 3 delayed, 4 failed, 5 events, 6 stats, 7 marker
-- ARGV: 1 id, 2 token, 3 kind (error|fatal|defer), 4 code, 5 message, 6 stack, 7 max retries,
--       8 backoff base ms, 9 defer ms, 10 max deferrals, 11 events maxlen, 12 jitter: the share of
--       the backoff delay to take off, drawn by the worker (QueueSpec.backoff_jitter x uniform [0, 1)),
--       13 limit key ('' for none)
local now = now_ms()
local jk, id, kind, code = KEYS[1], ARGV[1], ARGV[3], ARGV[4]
if redis.call('HGET', jk, 'token') ~= ARGV[2] then return {'LOST'} end
redis.call('ZREM', KEYS[2], id)
local base = base_of(KEYS[2], 'active')
group_left(base, jk)
redis.call('HDEL', jk, 'token')
redis.call('HSET', jk, 'code', code, 'error', ARGV[5], 'stack', ARGV[6])
if kind ~= 'defer' then record_attempt(jk, now, code, ARGV[5], ARGV[6]) end
local maxlen = ARGV[11]

local delay = -1
if kind == 'defer' then
  if redis.call('HINCRBY', jk, 'defers', 1) <= tonumber(ARGV[10]) then
    delay = tonumber(ARGV[9])
    local key = ARGV[13]
    if key and key ~= '' then delay = hold_slot(base, key, limit_set(base, key, now + delay)) - now end
  else
    code = 'ERR_DEFERRED_TOO_OFTEN'
  end
elseif kind == 'error' then
  local fails = redis.call('HINCRBY', jk, 'fails', 1)
  if fails <= tonumber(ARGV[7]) then
    delay = tonumber(ARGV[8]) * 2 ^ (fails - 1)
    local jitter = tonumber(ARGV[12])
    if jitter > 0 then delay = delay * (1 - jitter) end
    delay = math.floor(delay)
  end
else
  redis.call('HINCRBY', jk, 'fails', 1)
end

if delay >= 0 then
  redis.call('HSET', jk, 'state', 'delayed')
  redis.call('ZADD', KEYS[3], now + delay, id)
  redis.call('HINCRBY', KEYS[6], 'retried', 1)
  record_history(KEYS[6], now, 'r', 1)
  emit(KEYS[5], maxlen, 'retrying', id, 'code', code, 'delay', delay)
  wake(KEYS[7], 1)
  return {'RETRY', delay}
end
redis.call('HSET', jk, 'state', 'failed', 'finished', now, 'code', code)
if redis.call('HDEL', jk, 'secrets') == 1 then redis.call('HSET', jk, 'scrubbed', '1') end
redis.call('ZADD', KEYS[4], now, id)
redis.call('HINCRBY', KEYS[6], 'failed:' .. code, 1)
record_history(KEYS[6], now, 'f', 1)
emit(KEYS[5], maxlen, 'failed', id, 'code', code)
local base, name = job_names(jk, id)
return {'FAILED', code, dependents_out(jk, base .. 'resolve', name, 'failed', '')}
