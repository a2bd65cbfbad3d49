-- Take back jobs whose lease expired (their worker died or stalled). Throttled across workers.
-- Clearing the token fences the old worker: its later writes are refused.
-- KEYS: 1 reaper, 2 active, 3 wait, 4 prio, 5 failed, 6 events, 7 stats, 8 marker, 9 seq
-- ARGV: 1 interval ms, 2 batch, 3 max stalls, 4 job key prefix, 5 events maxlen
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return -1 end
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local maxstalls, maxlen, back = tonumber(ARGV[3]), ARGV[5], 0
for _, id in ipairs(ids) do
  local jk = ARGV[4] .. id
  redis.call('ZREM', KEYS[2], id)
  if redis.call('EXISTS', jk) == 1 then
    local stalls = redis.call('HINCRBY', jk, 'stalls', 1)
    group_left(base_of(KEYS[2], 'active'), jk)
    redis.call('HDEL', jk, 'token')
    redis.call('HINCRBY', KEYS[7], 'stalled', 1)
    record_history(KEYS[7], now, 's', 1)
    record_attempt(jk, now, 'ERR_STALLED', 'lease expired: the worker died or stopped heartbeating', '')
    if stalls > maxstalls then
      local msg = 'job stalled ' .. stalls .. ' times: its worker died or lost its lease'
      redis.call('HSET', jk, 'state', 'failed', 'finished', now, 'code', 'ERR_STALLED', 'error', msg, 'stack', '')
      if redis.call('HDEL', jk, 'secrets') == 1 then redis.call('HSET', jk, 'scrubbed', '1') end
      redis.call('ZADD', KEYS[5], now, id)
      redis.call('HINCRBY', KEYS[7], 'failed:ERR_STALLED', 1)
      record_history(KEYS[7], now, 'f', 1)
      emit(KEYS[6], maxlen, 'failed', id, 'code', 'ERR_STALLED')
      local base, name = job_names(jk, id)
      dependents_out(jk, base .. 'resolve', name, 'failed', '')
    else
      redis.call('HSET', jk, 'state', 'waiting')
      local h = redis.call('HMGET', jk, 'prio', 'grp')
      push_ready(KEYS[3], KEYS[4], KEYS[9], id, h[1], true, h[2])
      emit(KEYS[6], maxlen, 'stalled', id, 'stalls', stalls)
      back = back + 1
    end
  end
end
if back > 0 then wake(KEYS[8], back) end
return #ids
