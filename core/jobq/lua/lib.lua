-- Shared helpers, prepended to every script. Time always comes from Redis, never a worker clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Make a ready job claimable: priority 0 goes on the FIFO list, others on the priority zset.
-- front=true puts it first in line (released or stalled jobs).
local function push_ready(wait, prio, seq, id, p, front)
  p = tonumber(p) or 0
  if p == 0 then
    if front then redis.call('RPUSH', wait, id) else redis.call('LPUSH', wait, id) end
  else
    local n = 0
    if not front then n = redis.call('INCR', seq) end
    redis.call('ZADD', prio, -p * 1e12 + n, id)
  end
end

-- The next ready id: positive priorities first, then the FIFO list, then negative priorities.
local function pop_ready(wait, prio)
  local h = redis.call('ZRANGE', prio, 0, 0, 'WITHSCORES')
  if h[1] and tonumber(h[2]) < 0 then redis.call('ZREM', prio, h[1]); return h[1] end
  local id = redis.call('RPOP', wait)
  if id then return id end
  if h[1] then redis.call('ZREM', prio, h[1]); return h[1] end
  return nil
end

local function emit(events, maxlen, event, id, k1, v1, k2, v2)
  if maxlen == '0' then return end
  if k2 then
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'event', event, 'jobId', id, k1, v1, k2, v2)
  elseif k1 then
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'event', event, 'jobId', id, k1, v1)
  else
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'event', event, 'jobId', id)
  end
end

local function wake(marker, n)
  if n > 8 then n = 8 end
  for _ = 1, n do redis.call('LPUSH', marker, '1') end
  redis.call('LTRIM', marker, 0, 63)
end

-- Delete finished jobs older than the retention cut, a bounded batch per call.
local function trim(zset, jobprefix, gc, cut, limit)
  if cut < 0 then return end
  local old = redis.call('ZRANGEBYSCORE', zset, '-inf', cut, 'LIMIT', 0, limit)
  for _, id in ipairs(old) do
    local jk = jobprefix .. id
    local ref = redis.call('HGET', jk, 'ref')
    if ref then redis.call('RPUSH', gc, ref) end
    redis.call('DEL', jk)
  end
  if #old > 0 then redis.call('ZREM', zset, unpack(old)) end
end

-- Delete the oldest finished jobs beyond the count kept, a bounded batch per call.
local function trim_count(zset, jobprefix, gc, keep, limit)
  if keep < 0 then return end
  local over = redis.call('ZCARD', zset) - keep
  if over <= 0 then return end
  local old = redis.call('ZRANGE', zset, 0, math.min(over, limit) - 1)
  for _, id in ipairs(old) do
    local jk = jobprefix .. id
    local ref = redis.call('HGET', jk, 'ref')
    if ref then redis.call('RPUSH', gc, ref) end
    redis.call('DEL', jk)
  end
  if #old > 0 then redis.call('ZREM', zset, unpack(old)) end
end

-- Lease a ready job to a worker under token tok. Returns its 9 claim fields (id, token, attempt, data,
-- name, opts, created, secrets, ref), or nil for an id whose job hash is gone.
local function claim(jp, id, tok, worker, now, lease, active, events, maxlen)
  local jk = jp .. id
  local f = redis.call('HMGET', jk, 'data', 'name', 'opts', 'created', 'secrets', 'ref')
  if not f[1] then return nil end
  local att = redis.call('HINCRBY', jk, 'att', 1)
  redis.call('HSET', jk, 'state', 'active', 'token', tok, 'worker', worker, 'started', now)
  redis.call('ZADD', active, now + lease, id)
  emit(events, maxlen, 'active', id, 'attempt', att)
  return {id, tok, att, f[1], f[2] or '', f[3] or '', f[4], f[5] or '', f[6] or ''}
end

-- Per-minute history (dashboard, `jobq stats --history`): one hash <base>hist:<minute> per queue and
-- minute, derived from the queue's stats key, with counts c(ompleted) f(ailed) r(etried) s(talled),
-- and for completions d<i> (bucket i of HIST_MS, the last is "slower") plus ds (sum of ms). Kept 25 h.
local HIST_MS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000}
local function record_history(stats, now, field, n, durations)
  if n == 0 then return end
  local key = string.sub(stats, 1, -6) .. 'hist:' .. math.floor(now / 60000)
  redis.call('HINCRBY', key, field, n)
  if durations then
    local buckets, sum = {}, 0
    for _, d in ipairs(durations) do
      local i = #HIST_MS + 1
      for j, bound in ipairs(HIST_MS) do if d <= bound then i = j; break end end
      buckets[i] = (buckets[i] or 0) + 1
      sum = sum + d
    end
    for i, c in pairs(buckets) do redis.call('HINCRBY', key, 'd' .. i, c) end
    redis.call('HINCRBY', key, 'ds', sum)
  end
  redis.call('PEXPIRE', key, 90000000)
end

-- The last 5 failed attempts of a job (field faillog, JSON, at most ~10 kB): the dashboard shows each
-- one's code, message (500 chars) and stack tail (1,500); the current failure keeps its full text in
-- code/error/stack.
local function record_attempt(jk, now, code, message, stack)
  local ok, log = pcall(cjson.decode, redis.call('HGET', jk, 'faillog') or '[]')
  if not ok or type(log) ~= 'table' then log = {} end
  log[#log + 1] = {a = tonumber(redis.call('HGET', jk, 'att')) or 0, t = now, code = code,
                   message = string.sub(message, 1, 500), stack = string.sub(stack, -1500)}
  while #log > 5 do table.remove(log, 1) end
  redis.call('HSET', jk, 'faillog', cjson.encode(log))
end

-- The key base ("<prefix>:{<queue>}:") and the "<queue>|<id>" name of a job, from its key.
local function job_names(jk, id)
  local base = string.sub(jk, 1, #jk - #id - 4)
  return base, string.match(base, '{(.-)}:$') .. '|' .. id
end

-- A job reached a terminal state: hand each job that depends on it to the queue's resolve outbox,
-- where a worker (or the manager that cancelled it) resolves it in the dependent's own slot.
-- Returns how many entries it queued.
local function dependents_out(jk, outbox, dep, state, result)
  local dn = redis.call('HGET', jk, 'dn')
  if not dn then return 0 end
  redis.call('HDEL', jk, 'dn')
  local n = 0
  for target in string.gmatch(dn, '[^\n]+') do
    redis.call('RPUSH', outbox, cjson.encode({t = target, d = dep, s = state, r = result or ''}))
    n = n + 1
  end
  return n
end

-- Remove a job from the ready structures (cancel of a waiting job).
local function drop_ready(wait, prio, id)
  redis.call('LREM', wait, 1, id)
  redis.call('ZREM', prio, id)
end
