-- Run one schedule tick: move the schedule's last tick forward, then enqueue the tick's jobs (the
-- body of enqueue.lua follows this guard in the same script, see scripts.py). Nothing is written
-- unless the definition and last tick are still those the worker planned with: of the workers that
-- wake for one tick, the first enqueues it and the others find the last tick moved (RACE).
-- KEYS: enqueue.lua's, then the queue's schedules hash
-- ARGV: enqueue.lua's, then schedule name, definition JSON, expected last tick ms, new last tick ms
local sk = KEYS[#KEYS]
local sname, sdef, sexpected, snew = ARGV[#ARGV - 3], ARGV[#ARGV - 2], ARGV[#ARGV - 1], ARGV[#ARGV]
if redis.call('HGET', sk, 'def:' .. sname) ~= sdef then return {'GONE'} end
if redis.call('HGET', sk, 'paused:' .. sname) then return {'PAUSED'} end
if (redis.call('HGET', sk, 'last:' .. sname) or '') ~= sexpected then return {'RACE'} end
redis.call('HSET', sk, 'last:' .. sname, snew)
