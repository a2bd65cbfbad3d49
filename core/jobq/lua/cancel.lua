-- Cancel a job. A waiting, delayed or blocked job never starts; an active one loses its token, so its
-- worker is fenced out and its heartbeat (at most a second away) stops the handler. A finished job is
-- left as it is. The job ends in state 'cancelled' in the failed set (the dead-letter view).
-- KEYS: 1 job, 2 wait, 3 prio, 4 delayed, 5 active, 6 failed, 7 events, 8 stats, 9 blocked, 10 resolve
-- ARGV: 1 id, 2 reason, 3 events maxlen, 4 "<queue>|<id>" (this job as a dependency)
local now = now_ms()
local jk, id = KEYS[1], ARGV[1]
local state = redis.call('HGET', jk, 'state')
if not state then return {'MISSING', 0} end
if state == 'completed' or state == 'failed' or state == 'cancelled' then return {state, 0} end
local g = redis.call('HGET', jk, 'grp')
drop_ready(KEYS[2], KEYS[3], id, g)
if state == 'active' then group_left(base_of(KEYS[5], 'active'), jk, g) end
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('ZREM', KEYS[9], id)
redis.call('HDEL', jk, 'token')
if redis.call('HDEL', jk, 'secrets') == 1 then redis.call('HSET', jk, 'scrubbed', '1') end
redis.call('HSET', jk, 'state', 'cancelled', 'finished', now, 'code', 'ERR_CANCELLED', 'error', ARGV[2], 'stack', '')
redis.call('ZADD', KEYS[6], now, id)
redis.call('HINCRBY', KEYS[8], 'cancelled', 1)
emit(KEYS[7], ARGV[3], 'cancelled', id, 'was', state, 'reason', ARGV[2])
return {state, dependents_out(jk, KEYS[10], ARGV[4], 'cancelled', '')}
