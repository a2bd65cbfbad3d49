-- One round trip per batch: acknowledge finished jobs, trim old ones, claim up to n ready jobs
-- (within the queue's rate limit, groups in turn: see lib.lua).
-- Returns {now, lost ids, claim records, nextdue, dependents queued to resolve}; nextdue: ms until
-- a claim may find work again (a delayed job, a rate window opening), -1 for "when woken".
-- KEYS: 1 wait, 2 prio, 3 delayed, 4 active, 5 completed, 6 failed, 7 meta, 8 events, 9 stats,
--       10 gc, 11 seq, 11+i job key of ack i
-- ARGV: 1 job key prefix, 2 lease ms, 3 n to claim, 4 token base, 5 events maxlen,
--       6 keep completed "<ms>,<count>" (-1: no limit), 7 keep failed "<ms>,<count>", 8 worker id, 9 n acks,
--       then 4 per ack: id, token, result, duration ms
local now = now_ms()
local jp, lease, want, tbase, maxlen = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local nack = tonumber(ARGV[9])
local base = base_of(jp, 'job:')
local qname = string.match(base, '{(.-)}:$')

local lost = {}
local done, nres, durs = 0, 0, {}
local gconc  -- read at the first grouped ack
for i = 1, nack do
  local b = 9 + (i - 1) * 4
  local id, tok = ARGV[b + 1], ARGV[b + 2]
  local jk = KEYS[11 + i]
  local h = redis.call('HMGET', jk, 'token', 'grp', 'dn')
  if h[1] == tok then
    redis.call('ZREM', KEYS[4], id)
    if h[2] then
      gconc = gconc or tonumber(redis.call('HGET', KEYS[7], 'gconc')) or 0
      group_left(base, jk, h[2], gconc)
    end
    redis.call('ZADD', KEYS[5], now, id)
    redis.call('HSET', jk, 'state', 'completed', 'finished', now, 'result', ARGV[b + 3])
    redis.call('HDEL', jk, 'token', 'secrets', 'code', 'error', 'stack', 'dn')
    emit(KEYS[8], maxlen, 'completed', id)
    nres = nres + dependents_push(h[3], base .. 'resolve', qname .. '|' .. id, 'completed', ARGV[b + 3])
    done = done + 1
    durs[done] = tonumber(ARGV[b + 4]) or 0
  else
    lost[#lost + 1] = id
  end
end
if done > 0 then redis.call('HINCRBY', KEYS[9], 'completed', done) end
record_history(KEYS[9], now, 'c', done, durs)

-- "<ms>,<count>", or "<ms>" alone (no count limit)
local function keep(spec)
  local ms, count = string.match(spec, '^(-?%d+),(-?%d+)$')
  if ms then return tonumber(ms), tonumber(count) end
  return tonumber(spec), -1
end
local keepc, keepcn = keep(ARGV[6])
local keepf, keepfn = keep(ARGV[7])
if keepc >= 0 then trim(KEYS[5], jp, KEYS[10], now - keepc, done + 8) end
if keepf >= 0 then trim(KEYS[6], jp, KEYS[10], now - keepf, 8) end
trim_count(KEYS[5], jp, KEYS[10], keepcn, done + 8)
trim_count(KEYS[6], jp, KEYS[10], keepfn, 8)

local claimed = {}
local nextdue = -1
local f = want > 0 and flow(base, now)
if f and not f.paused then
  local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
  local open = redis.call('ZRANGEBYSCORE', base .. 'gwake', '-inf', now, 'LIMIT', 0, 100)
  if #due > 0 then
    redis.call('ZREM', KEYS[3], unpack(due))
    for _, id in ipairs(due) do
      local jk = jp .. id
      local h = redis.call('HMGET', jk, 'state', 'prio', 'grp')
      if h[1] then
        redis.call('HSET', jk, 'state', 'waiting')
        push_ready(KEYS[1], KEYS[2], KEYS[11], id, h[2], false, h[3])
      end
    end
  end
  if #open > 0 then
    redis.call('ZREM', base .. 'gwake', unpack(open))
    for _, g in ipairs(open) do ring_offer(base, g) end
  end
  if f.held then
    local ended = redis.call('ZRANGEBYSCORE', base .. 'limits', '-inf', now, 'LIMIT', 0, 100)
    if #ended > 0 then
      redis.call('ZREM', base .. 'limits', unpack(ended))
      redis.call('HDEL', base .. 'limitn', unpack(ended))
      f.held = redis.call('EXISTS', base .. 'limits') == 1
    end
  end
  if #due > 0 or #open > 0 then f.groups = redis.call('EXISTS', base .. 'ring') == 1 end
  local room = rate_room(f, want)
  local ids = {}
  if room > 0 and not f.groups and not f.held and redis.call('ZCARD', KEYS[2]) == 0 then
    ids = redis.call('RPOP', KEYS[1], room) or {}
  elseif room > 0 then
    for _ = 1, room do
      local id = pop_ready(KEYS[1], KEYS[2], f)
      if not id then break end
      ids[#ids + 1] = id
    end
  end
  for i, id in ipairs(ids) do
    local tok = tbase .. i
    local rec = claim(jp, id, tok, ARGV[8], now, lease, KEYS[4], KEYS[8], maxlen)
    if rec then
      rate_note(f, tok)
      for _, v in ipairs(rec) do claimed[#claimed + 1] = v end
    end
  end
  if #ids < want then
    nextdue = rate_wait(f)
    local w = redis.call('ZRANGE', base .. 'gwake', 0, 0, 'WITHSCORES')
    if w[2] and (nextdue < 0 or tonumber(w[2]) - now < nextdue) then nextdue = math.max(tonumber(w[2]) - now, 1) end
    if f.parks <= 0 then nextdue = 1 end  -- parked its budget of held jobs: more may be claimable
  end
end
flow_done(f)

if #claimed == 0 then
  local h = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if h[2] and (nextdue < 0 or tonumber(h[2]) - now < nextdue) then nextdue = tonumber(h[2]) - now end
end
return {now, lost, claimed, nextdue, nres}
