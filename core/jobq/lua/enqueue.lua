-- Add jobs; an id that exists already is left as it is (idempotent) and its state returned.
-- Ready jobs go straight to idle workers (one hop): each is leased to the worker here, exactly as
-- fetch.lua would, and its claim record pushed to the list that worker blocks on; the lease exists
-- before the handoff, so a worker that dies meanwhile loses nothing (the reaper takes the job back).
-- KEYS: 1 wait, 2 prio, 3 delayed, 4 marker, 5 events, 6 seq, 7 idle, 8 active, 9 meta,
--       9+i job key of job i
-- ARGV: 1 events maxlen, 2 n, 3 queue key base, then 10 per job: id, name, data, secrets, opts,
--       delay_ms, priority, ref, group, limit key
local now = now_ms()
local maxlen = ARGV[1]
local n = tonumber(ARGV[2])
local out = {now}
local fifo = {}
local ready = 0
for i = 1, n do
  local b = 3 + (i - 1) * 10
  local id = ARGV[b + 1]
  local jk = KEYS[9 + i]
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
    local g = ARGV[b + 9] ~= '' and ARGV[b + 9]
    if g then f[#f + 1] = 'grp'; f[#f + 1] = g end
    if ARGV[b + 10] ~= '' then f[#f + 1] = 'lkey'; f[#f + 1] = ARGV[b + 10] end
    redis.call('HSET', jk, unpack(f))
    if delay > 0 then
      redis.call('ZADD', KEYS[3], now + delay, id)
      emit(KEYS[5], maxlen, 'delayed', id, 'delay', delay)
    elseif p == '0' and not g then
      fifo[#fifo + 1] = id
      emit(KEYS[5], maxlen, 'added', id)
    else
      push_ready(KEYS[1], KEYS[2], KEYS[6], id, p, false, g)
      emit(KEYS[5], maxlen, 'added', id)
    end
    ready = ready + 1
    out[i + 1] = ''
  end
end
for i = 1, #fifo, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(fifo, i, math.min(i + 999, #fifo)))
end
local handed = 0
local fl = ready > 0 and redis.call('EXISTS', KEYS[7]) == 1 and flow(ARGV[3], now)
if fl and not fl.paused then
  local base = ARGV[3]
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. now)  -- registrations of workers gone quiet
  local simple, room = not fl.groups and not fl.held, rate_room(fl, ready)
  local idle = room > 0 and redis.call('ZRANGE', KEYS[7], 0, room - 1) or {}
  for _, member in ipairs(idle) do
    local id
    if simple then id = pop_ready(KEYS[1], KEYS[2]) else id = pop_ready(KEYS[1], KEYS[2], fl) end
    if not id then break end
    redis.call('ZREM', KEYS[7], member)
    local sep = string.find(member, '|', 1, true)
    local lease, worker = tonumber(string.sub(member, 1, sep - 1)), string.sub(member, sep + 1)
    local tok = 'h' .. redis.call('INCR', KEYS[6]) .. ':' .. worker
    local rec = claim(base .. 'job:', id, tok, worker, now, lease, KEYS[8], KEYS[5], maxlen)
    if rec then
      rate_note(fl, tok)
      rec[10] = now
      local inbox = base .. 'inbox:' .. worker
      redis.call('RPUSH', inbox, cjson.encode(rec))
      redis.call('PEXPIRE', inbox, lease)
      handed = handed + 1
    end
  end
end
flow_done(fl)
if ready > handed then wake(KEYS[4], ready - handed) end
return out
