-- Extend the leases of the jobs a worker still owns; report those it lost (fenced by token).
-- KEYS: 1 active, 1+i job key of job i
-- ARGV: 1 lease ms, then 2 per job: id, token
local now = now_ms()
local deadline = now + tonumber(ARGV[1])
local lost = {}
for i = 1, #KEYS - 1 do
  local id, tok = ARGV[2 * i], ARGV[2 * i + 1]
  if redis.call('HGET', KEYS[1 + i], 'token') == tok then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
