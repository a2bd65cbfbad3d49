-- Hand an unfinished job back at shutdown, first in line, without counting the attempt.
-- KEYS: 1 job, 2 active, 3 wait, 4 prio, 5 marker, 6 events, 7 seq
-- ARGV: 1 id, 2 token, 3 events maxlen
local jk, id = KEYS[1], ARGV[1]
if redis.call('HGET', jk, 'token') ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], id)
group_left(base_of(KEYS[2], 'active'), jk)
redis.call('HDEL', jk, 'token')
redis.call('HINCRBY', jk, 'att', -1)
redis.call('HSET', jk, 'state', 'waiting')
local h = redis.call('HMGET', jk, 'prio', 'grp')
push_ready(KEYS[3], KEYS[4], KEYS[7], id, h[1], true, h[2])
emit(KEYS[6], ARGV[3], 'released', id)
wake(KEYS[5], 1)
return 1
