-- Pause or resume one group of a queue: a paused group leaves the ring (its active jobs finish).
-- KEYS: 1 gpaused, 2 ring, 3 marker   ARGV: 1 group, 2 'pause' or 'resume'
local g = ARGV[1]
if ARGV[2] == 'pause' then
  redis.call('SADD', KEYS[1], g)
  redis.call('ZREM', KEYS[2], g)
  return 1
end
if redis.call('SREM', KEYS[1], g) == 0 then return 0 end
if ring_offer(base_of(KEYS[1], 'gpaused'), g) then wake(KEYS[3], 8) end
return 1
