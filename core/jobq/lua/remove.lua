-- Delete a job wherever it is. An active job's worker is fenced out (its token is gone).
-- KEYS: 1 job, 2 wait, 3 prio, 4 delayed, 5 active, 6 completed, 7 failed, 8 gc, 9 events
-- ARGV: 1 id, 2 events maxlen
local jk, id = KEYS[1], ARGV[1]
if redis.call('EXISTS', jk) == 0 then return 0 end
local h = redis.call('HMGET', jk, 'ref', 'state', 'grp')
if h[1] then redis.call('RPUSH', KEYS[8], h[1]) end
local base = base_of(KEYS[5], 'active')
if h[2] == 'active' then group_left(base, jk) end
if h[3] and h[2] == 'waiting' then
  local n = redis.call('LREM', gkey(base, h[3], 'wait'), 0, id) + redis.call('ZREM', gkey(base, h[3], 'prio'), id)
  if n > 0 then redis.call('DECR', base .. 'gready') end
end
redis.call('LREM', KEYS[2], 0, id)
for k = 3, 7 do redis.call('ZREM', KEYS[k], id) end
redis.call('DEL', jk)
emit(KEYS[9], ARGV[2], 'removed', id)
return 1
