-- Add jobs; an id that exists already is left as it is (idempotent) and its state returned.
-- KEYS: 1 wait, 2 prio, 3 delayed, 4 marker, 5 events, 6 seq, 6+i job key of job i
-- ARGV: 1 events maxlen, 2 n, then 8 per job: id, name, data, secrets, opts, delay_ms, priority, ref
local now = now_ms()
local maxlen = ARGV[1]
local n = tonumber(ARGV[2])
local out = {now}
local fifo = {}
local ready = 0
for i = 1, n do
  local b = 2 + (i - 1) * 8
  local id = ARGV[b + 1]
  local jk = KEYS[6 + i]
  local state = redis.call('HGET', jk, 'state')
  if state then
    out[i + 1] = state
  else
    local delay, p = tonumber(ARGV[b + 6]), ARGV[b + 7]
    state = 'waiting'
    if delay > 0 then state = 'delayed' end
    local f = {'data', ARGV[b + 3], 'created', now, 'state', state}
    if p ~= '0' then f[#f + 1] = 'prio'; f[#f + 1] = p end
    if ARGV[b + 2] ~= '' then f[#f + 1] = 'name'; f[#f + 1] = ARGV[b + 2] end
    if ARGV[b + 4] ~= '' then f[#f + 1] = 'secrets'; f[#f + 1] = ARGV[b + 4] end
    if ARGV[b + 5] ~= '' then f[#f + 1] = 'opts'; f[#f + 1] = ARGV[b + 5] end
    if ARGV[b + 8] ~= '' then f[#f + 1] = 'ref'; f[#f + 1] = ARGV[b + 8] end
    redis.call('HSET', jk, unpack(f))
    if delay > 0 then
      redis.call('ZADD', KEYS[3], now + delay, id)
      emit(KEYS[5], maxlen, 'delayed', id, 'delay', delay)
    elseif p == '0' then
      fifo[#fifo + 1] = id
      emit(KEYS[5], maxlen, 'added', id)
    else
      push_ready(KEYS[1], KEYS[2], KEYS[6], id, p, false)
      emit(KEYS[5], maxlen, 'added', id)
    end
    ready = ready + 1
    out[i + 1] = ''
  end
end
for i = 1, #fifo, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(fifo, i, math.min(i + 999, #fifo)))
end
if ready > 0 then wake(KEYS[4], ready) end
return out
