-- Run due schedule ticks: move each schedule's last tick forward, then enqueue the ticks' jobs (the
-- body of enqueue.lua follows this guard in the same script, see scripts.py). All or nothing: if
-- any schedule's definition, pause flag or last tick differs from what the worker planned with,
-- nothing is written. Of the workers that wake for one tick, the first enqueues it and the others
-- find the last tick moved (RACE).
-- KEYS: enqueue.lua's, then the queue's schedules hash
-- ARGV: enqueue.lua's, then 4 per schedule: name, definition JSON, expected last tick ms, new last
--       tick ms; then the number of schedules
local sk = KEYS[#KEYS]
local nsched = tonumber(ARGV[#ARGV])
local sbase = #ARGV - 1 - 4 * nsched
for i = 0, nsched - 1 do
  local b = sbase + 4 * i
  local sname = ARGV[b + 1]
  if redis.call('HGET', sk, 'def:' .. sname) ~= ARGV[b + 2] then return {'GONE', sname} end
  if redis.call('HGET', sk, 'paused:' .. sname) then return {'PAUSED', sname} end
  if (redis.call('HGET', sk, 'last:' .. sname) or '') ~= ARGV[b + 3] then return {'RACE', sname} end
end
for i = 0, nsched - 1 do
  local b = sbase + 4 * i
  redis.call('HSET', sk, 'last:' .. ARGV[b + 1], ARGV[b + 4])
end
