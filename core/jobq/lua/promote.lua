-- Operator promotion of a delayed job: ready now, in its normal place in line.
-- KEYS: 1 job, 2 delayed, 3 wait, 4 prio, 5 marker, 6 events, 7 seq
-- ARGV: 1 id, 2 events maxlen
local jk, id = KEYS[1], ARGV[1]
if redis.call('ZREM', KEYS[2], id) == 0 then return 0 end
local h = redis.call('HMGET', jk, 'prio', 'state', 'grp')
if not h[2] then return 0 end
redis.call('HSET', jk, 'state', 'waiting')
push_ready(KEYS[3], KEYS[4], KEYS[7], id, h[1], false, h[3])
emit(KEYS[6], ARGV[2], 'promoted', id)
wake(KEYS[5], 1)
return 1
