-- Store progress of the attempt holding the token; a stale attempt's write is refused.
-- KEYS: 1 job, 2 events   ARGV: 1 id, 2 token, 3 progress JSON, 4 events maxlen
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[3])
emit(KEYS[2], ARGV[4], 'progress', ARGV[1], 'progress', ARGV[3])
return 1
