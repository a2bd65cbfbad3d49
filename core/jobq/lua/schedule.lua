-- Change one schedule's stored state. A new schedule's last tick is now (its first tick is the next
-- one); a replaced definition keeps its last tick; resuming skips the ticks due while paused.
-- KEYS: 1 the queue's schedules hash (def:<name>, last:<name>, paused:<name>, declared:<name>)
-- ARGV: 1 op (set|remove|pause|resume), 2 schedule name, 3 definition JSON (set), 4 max schedules
-- Returns 1 done (set: new or changed), 0 nothing to do or no such schedule, -1 too many schedules.
local now = now_ms()
local h, op, name = KEYS[1], ARGV[1], ARGV[2]
local def = 'def:' .. name
if op == 'set' then
  local old = redis.call('HGET', h, def)
  if not old and redis.call('HLEN', h) >= 3 * tonumber(ARGV[4]) then return -1 end
  redis.call('HSET', h, def, ARGV[3])
  redis.call('HSETNX', h, 'last:' .. name, now)
  if old == ARGV[3] then return 0 end
  return 1
end
if redis.call('HEXISTS', h, def) == 0 then return 0 end
if op == 'remove' then
  redis.call('HDEL', h, def, 'last:' .. name, 'paused:' .. name, 'declared:' .. name)
elseif op == 'pause' then
  redis.call('HSET', h, 'paused:' .. name, '1')
elseif op == 'resume' then
  if redis.call('HDEL', h, 'paused:' .. name) == 1 then redis.call('HSET', h, 'last:' .. name, now) end
end
return 1
