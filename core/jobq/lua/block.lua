-- Add jobs that wait for others (state 'blocked'): they are not ready until resolve.lua has seen
-- every dependency end. An id that exists already is left as it is and its state returned.
-- KEYS: 1 blocked, 2 events, i+2 job key of job i
-- ARGV: 1 events maxlen, 2 n, 3 first reconcile delay ms, then 11 per job: id, name, data, secrets,
--       opts, priority, ref, number of dependencies, on-dependency-failure ('fail' or 'run'), group,
--       limit key
local now = now_ms()
local n = tonumber(ARGV[2])
local out = {now}
for i = 1, n do
  local b = 3 + (i - 1) * 11
  local id, jk = ARGV[b + 1], KEYS[2 + i]
  local state = redis.call('HGET', jk, 'state')
  if state then
    out[i + 1] = state
  else
    local f = {'data', ARGV[b + 3], 'created', now, 'state', 'blocked', 'pending', ARGV[b + 8],
               'dfail', ARGV[b + 9]}
    if ARGV[b + 6] ~= '0' then f[#f + 1] = 'prio'; f[#f + 1] = ARGV[b + 6] end
    if ARGV[b + 2] ~= '' then f[#f + 1] = 'name'; f[#f + 1] = ARGV[b + 2] end
    if ARGV[b + 4] ~= '' then f[#f + 1] = 'secrets'; f[#f + 1] = ARGV[b + 4] end
    if ARGV[b + 5] ~= '' then f[#f + 1] = 'opts'; f[#f + 1] = ARGV[b + 5] end
    if ARGV[b + 7] ~= '' then f[#f + 1] = 'ref'; f[#f + 1] = ARGV[b + 7] end
    if ARGV[b + 10] ~= '' then f[#f + 1] = 'grp'; f[#f + 1] = ARGV[b + 10] end
    if ARGV[b + 11] ~= '' then f[#f + 1] = 'lkey'; f[#f + 1] = ARGV[b + 11] end
    redis.call('HSET', jk, unpack(f))
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
    emit(KEYS[2], ARGV[1], 'blocked', id, 'pending', ARGV[b + 8])
    out[i + 1] = ''
  end
end
return out
