-- Hand an unfinished job back at shutdown, first in line, without counting the attempt.
-- KEYS: 1 job, 2 active, 3 wait, 4 prio, 5 marker, 6 events, 7 seq
-- ARGV: 1 id, 2 token, 3 events maxlen
local jk, id = KEYS[1], ARGV[1]
if redis.call('HGET', jk, 'token') ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', jk, 'token')
redis.call('HINCRBY', jk, 'att', -1)
redis.call('HSET', jk, 'state', 'waiting')
push_ready(KEYS[3], KEYS[4], KEYS[7], id, redis.call('HGET', jk, 'prio'), true)
emit(KEYS[6], ARGV[3], 'released', id)
wake(KEYS[5], 1)
return 1
