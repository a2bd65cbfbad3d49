-- Delete up to a batch of jobs from a finished set (failed or completed).
-- KEYS: 1 set, 2 gc   ARGV: 1 job key prefix, 2 batch
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  local jk = ARGV[1] .. id
  local ref = redis.call('HGET', jk, 'ref')
  if ref then redis.call('RPUSH', KEYS[2], ref) end
  redis.call('DEL', jk)
end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return #ids
