-- Add jobs; an id that exists already is left as it is (idempotent) and its state returned.
-- KEYS: 1 wait, 2 prio, 3 delayed, 4 marker, 5 events, 6 seq, 6+i job key of job i
-- ARGV: 1 events maxlen, 2 n, then 8 per job: id, name, data, secrets, opts, delay_ms, priority, ref
local now = now_ms()
local maxlen = ARGV[1]
local n = tonumber(ARGV[2])
local out = {now}
local ready = 0
for i = 1, n do
  local b = 2 + (i - 1) * 8
  local id = ARGV[b + 1]
  local jk = KEYS[6 + i]
  local state = redis.call('HGET', jk, 'state')
  if state then
    out[i + 1] = state
  else
    local delay = tonumber(ARGV[b + 6])
    local p = ARGV[b + 7]
    local f = {'name', ARGV[b + 2], 'data', ARGV[b + 3], 'created', now, 'prio', p}
    if ARGV[b + 4] ~= '' then f[#f + 1] = 'secrets'; f[#f + 1] = ARGV[b + 4] end
    if ARGV[b + 5] ~= '' then f[#f + 1] = 'opts'; f[#f + 1] = ARGV[b + 5] end
    if ARGV[b + 8] ~= '' then f[#f + 1] = 'ref'; f[#f + 1] = ARGV[b + 8] end
    if delay > 0 then
      f[#f + 1] = 'state'; f[#f + 1] = 'delayed'
      redis.call('HSET', jk, unpack(f))
      redis.call('ZADD', KEYS[3], now + delay, id)
      emit(KEYS[5], maxlen, 'delayed', id, 'delay', delay)
      ready = ready + 1
    else
      f[#f + 1] = 'state'; f[#f + 1] = 'waiting'
      redis.call('HSET', jk, unpack(f))
      push_ready(KEYS[1], KEYS[2], KEYS[6], id, p, false)
      emit(KEYS[5], maxlen, 'added', id)
      ready = ready + 1
    end
    out[i + 1] = ''
  end
end
if ready > 0 then wake(KEYS[4], ready) end
return out
