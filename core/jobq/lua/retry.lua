-- Operator retry of a failed job: back to waiting with fresh retry and stall budgets.
-- KEYS: 1 job, 2 failed, 3 wait, 4 prio, 5 marker, 6 events, 7 seq
-- ARGV: 1 id, 2 events maxlen
local jk, id = KEYS[1], ARGV[1]
local state = redis.call('HGET', jk, 'state')
if not state then return 'MISSING' end
if state ~= 'failed' then return state end
if redis.call('HGET', jk, 'scrubbed') == '1' then return 'SCRUBBED' end
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', jk, 'fails', 'stalls', 'defers', 'finished', 'code', 'error', 'stack', 'result', 'progress')
redis.call('HSET', jk, 'state', 'waiting')
local h = redis.call('HMGET', jk, 'prio', 'grp')
push_ready(KEYS[3], KEYS[4], KEYS[7], id, h[1], false, h[2])
emit(KEYS[6], ARGV[2], 'added', id, 'retry', '1')
wake(KEYS[5], 1)
return 'OK'
