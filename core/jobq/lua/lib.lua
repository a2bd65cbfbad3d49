-- Shared helpers, prepended to every script. Time always comes from Redis, never a worker clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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

-- Flow control (docs/design.md, "Flow control"). A grouped job waits in its group's own list and
-- zset (g:<group>:wait, g:<group>:prio). ring: ZSET of the groups a claim may serve now (ready
-- jobs, not paused, under group_concurrency, not rate-limited) in round-robin order (score from
-- rseq). A claim pops the first group, takes its best job and puts the group back at the end if it
-- still qualifies: a group of 100,000 jobs and one of 10 progress equally, each step O(log n).
-- gactive HASH group -> active jobs; gpaused SET; gwake ZSET group -> ms its rate window opens;
-- gready STRING grouped ready jobs; starts, g:<group>:starts ZSET sliding logs of claim times;
-- limits ZSET limit key -> ms its jobs are held until; limitn HASH limit key -> jobs held so far.
local HOLD_BATCH, HOLD_STEP = 4, 250  -- held jobs come back 4 at a time, 250 ms apart: no herd

local function base_of(key, name) return string.sub(key, 1, #key - #name) end
local function gkey(base, g, what) return base .. 'g:' .. g .. ':' .. what end

local function group_ready(base, g)
  return redis.call('LLEN', gkey(base, g, 'wait')) > 0 or redis.call('ZCARD', gkey(base, g, 'prio')) > 0
end

-- Put group g at the end of the ring if it qualifies and is not there yet; true when added.
local function ring_offer(base, g)
  local ring = base .. 'ring'
  if redis.call('ZSCORE', ring, g) then return false end
  if redis.call('SISMEMBER', base .. 'gpaused', g) == 1 or redis.call('ZSCORE', base .. 'gwake', g) then
    return false
  end
  local c = tonumber(redis.call('HGET', base .. 'meta', 'gconc')) or 0
  if c > 0 and (tonumber(redis.call('HGET', base .. 'gactive', g)) or 0) >= c then return false end
  if not group_ready(base, g) then return false end
  redis.call('ZADD', ring, redis.call('INCR', base .. 'rseq'), g)
  return true
end

-- Make a ready job claimable: priority 0 goes on the FIFO list, others on the priority zset.
-- front=true puts it first in line (released or stalled jobs). A job of group g (nil or false for
-- none) goes to its group's list/zset, and the group into the ring.
local function push_ready(wait, prio, seq, id, p, front, g)
  local base
  if g then
    base = base_of(seq, 'seq')
    wait, prio = gkey(base, g, 'wait'), gkey(base, g, 'prio')
  end
  p = tonumber(p) or 0
  if p == 0 then
    if front then redis.call('RPUSH', wait, id) else redis.call('LPUSH', wait, id) end
  else
    local n = 0
    if not front then n = redis.call('INCR', seq) end
    redis.call('ZADD', prio, -p * 1e12 + n, id)
  end
  if g then
    redis.call('INCR', base .. 'gready')
    ring_offer(base, g)
  end
end

-- The next id of one list/zset pair: positive priorities first, then FIFO, then negative ones.
local function pop_list(wait, prio)
  local h = redis.call('ZRANGE', prio, 0, 0, 'WITHSCORES')
  if h[1] and tonumber(h[2]) < 0 then redis.call('ZREM', prio, h[1]); return h[1] end
  local id = redis.call('RPOP', wait)
  if id then return id end
  if h[1] then redis.call('ZREM', prio, h[1]); return h[1] end
  return nil
end

-- The flow state of one script call, read once: limits from meta, whether groups or held limit
-- keys exist. rate and grate are "<max>/<window ms>".
local function flow(base, now)
  local m = redis.call('HMGET', base .. 'meta', 'paused', 'rate', 'gconc', 'grate')
  local f = {base = base, now = now, paused = m[1] == '1', gconc = tonumber(m[3]) or 0,
             groups = redis.call('EXISTS', base .. 'ring') == 1,
             held = redis.call('EXISTS', base .. 'limits') == 1, turn = now % 2 == 0, parks = 1000,
             popped = 0, rs = 0, rn = 0}
  if m[2] then
    local a, b = string.match(m[2], '^(%d+)/(%d+)$')
    f.rmax, f.rwin = tonumber(a), tonumber(b)
  end
  if m[4] then
    local a, b = string.match(m[4], '^(%d+)/(%d+)$')
    f.gmax, f.gwin = tonumber(a), tonumber(b)
  end
  return f
end

-- Pop the first group of the ring and its best job (empty groups left in the ring are dropped).
local function pop_group(f)
  for _ = 1, 16 do
    local h = redis.call('ZPOPMIN', f.base .. 'ring')
    if not h[1] then f.groups = false; return nil end
    local id = pop_list(gkey(f.base, h[1], 'wait'), gkey(f.base, h[1], 'prio'))
    if id then
      f.popped = f.popped + 1  -- gready is decremented once, by flow_done
      return id, h[1]
    end
  end
  return nil
end

-- A job of group g starts: count it, log it for the group's rate limit, and put the group back
-- at the end of the ring unless that takes it to its concurrency or rate limit.
local function group_took(f, g)
  local again = f.gconc == 0 or redis.call('HINCRBY', f.base .. 'gactive', g, 1) < f.gconc
  if f.gmax then
    local log = gkey(f.base, g, 'starts')
    redis.call('ZREMRANGEBYSCORE', log, '-inf', f.now - f.gwin)
    redis.call('ZADD', log, f.now, redis.call('INCR', f.base .. 'rseq'))
    redis.call('PEXPIRE', log, f.gwin)
    if redis.call('ZCARD', log) >= f.gmax then
      local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
      redis.call('ZADD', f.base .. 'gwake', tonumber(oldest[2]) + f.gwin, g)
      again = false
    end
  end
  if again and group_ready(f.base, g) then
    if f.rn == 0 then  -- reserve ring positions 256 at a time: scripts never interleave, so
      f.rs, f.rn = redis.call('INCRBY', f.base .. 'rseq', 256) - 256, 256  -- later ones rank after
    end
    f.rs, f.rn = f.rs + 1, f.rn - 1
    redis.call('ZADD', f.base .. 'ring', f.rs, g)
  end
end

-- Write back what a flow state counted (call once at the end of a script that made one).
local function flow_done(f)
  if f and f.popped > 0 then redis.call('DECRBY', f.base .. 'gready', f.popped) end
end

-- Set (or extend) the hold on limit key; returns the ms it ends.
local function limit_set(base, key, untl)
  local old = tonumber(redis.call('ZSCORE', base .. 'limits', key))
  if old and old >= untl then return old end
  redis.call('ZADD', base .. 'limits', untl, key)
  redis.call('HDEL', base .. 'limitn', key)
  return untl
end

-- When the next job held behind limit key comes back: HOLD_BATCH at a time, HOLD_STEP ms apart.
local function hold_slot(base, key, untl)
  local n = redis.call('HINCRBY', base .. 'limitn', key, 1)
  return untl + math.floor((n - 1) / HOLD_BATCH) * HOLD_STEP
end

-- If the job's limit key is held, park the job in delayed until its slot; true when parked.
-- At most f.parks jobs per script call, so a flood behind one key never makes one long call.
local function hold(f, id)
  if not f.held then return false end
  local jk = f.base .. 'job:' .. id
  local key = redis.call('HGET', jk, 'lkey')
  if not key then return false end
  local untl = tonumber(redis.call('ZSCORE', f.base .. 'limits', key))
  if not untl or untl <= f.now then return false end
  redis.call('HSET', jk, 'state', 'delayed')
  redis.call('ZADD', f.base .. 'delayed', hold_slot(f.base, key, untl), id)
  f.parks = f.parks - 1
  return true
end

-- The next ready id. Without f: the queue's own list/zset. With a flow state f: ungrouped jobs
-- and the ring of groups take turns, jobs whose limit key is held are parked, and a grouped job's
-- start is counted against its group.
local function pop_ready(wait, prio, f)
  if not f then return pop_list(wait, prio) end
  while f.parks > 0 do
    local id, g
    f.turn = not f.turn
    if f.groups and f.turn then id, g = pop_group(f) end
    if not id then id = pop_list(wait, prio) end
    if not id and f.groups then id, g = pop_group(f) end
    if not id then return nil end
    if not hold(f, id) then
      if g then group_took(f, g) end
      return id
    end
    if g then ring_offer(f.base, g) end
  end
  return nil
end

-- How many of want may start now under the queue's rate limit (a sliding log of claim times:
-- never more than max in any window).
local function rate_room(f, want)
  if not f.rmax then return want end
  local log = f.base .. 'starts'
  redis.call('ZREMRANGEBYSCORE', log, '-inf', f.now - f.rwin)
  return math.max(0, math.min(want, f.rmax - redis.call('ZCARD', log)))
end

local function rate_note(f, tok)
  if not f.rmax then return end
  redis.call('ZADD', f.base .. 'starts', f.now, tok)
  redis.call('PEXPIRE', f.base .. 'starts', f.rwin)
end

-- ms until the queue's rate window has room again; -1 when it has room now.
local function rate_wait(f)
  if not f.rmax or redis.call('ZCARD', f.base .. 'starts') < f.rmax then return -1 end
  local oldest = redis.call('ZRANGE', f.base .. 'starts', 0, 0, 'WITHSCORES')
  return math.max(tonumber(oldest[2]) + f.rwin - f.now, 1)
end

-- Every path by which a job leaves active calls this once: the job's group gets its slot back
-- and returns to the ring (waking a worker) if that was all that kept it out. g: the job's group
-- when the caller read it already (false: none), else nil; gconc: the queue's group_concurrency
-- when read already. Active jobs per group are counted only under a group_concurrency.
local function group_left(base, jk, g, gconc)
  if g == nil then g = redis.call('HGET', jk, 'grp') end
  if not g then return end
  if gconc == nil then gconc = tonumber(redis.call('HGET', base .. 'meta', 'gconc')) or 0 end
  if gconc == 0 then return end
  if redis.call('HINCRBY', base .. 'gactive', g, -1) <= 0 then redis.call('HDEL', base .. 'gactive', g) end
  if ring_offer(base, g) then wake(base .. 'marker', 1) end
end

-- Delete finished jobs (their hashes, and claim-checked payloads via the gc list) and their entries.
local function drop_finished(zset, jobprefix, gc, old)
  for _, id in ipairs(old) do
    local jk = jobprefix .. id
    local ref = redis.call('HGET', jk, 'ref')
    if ref then redis.call('RPUSH', gc, ref) end
    redis.call('DEL', jk)
  end
  if #old > 0 then redis.call('ZREM', zset, unpack(old)) end
end

-- Delete finished jobs older than the retention cut, a bounded batch per call.
local function trim(zset, jobprefix, gc, cut, limit)
  if cut < 0 then return end
  drop_finished(zset, jobprefix, gc, redis.call('ZRANGEBYSCORE', zset, '-inf', cut, 'LIMIT', 0, limit))
end

-- Delete the oldest finished jobs beyond the count kept, a bounded batch per call.
local function trim_count(zset, jobprefix, gc, keep, limit)
  if keep < 0 then return end
  local over = redis.call('ZCARD', zset) - keep
  if over <= 0 then return end
  drop_finished(zset, jobprefix, gc, redis.call('ZRANGE', zset, 0, math.min(over, limit) - 1))
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
local function dependents_push(dn, outbox, dep, state, result)
  if not dn then return 0 end
  local n = 0
  for target in string.gmatch(dn, '[^\n]+') do
    redis.call('RPUSH', outbox, cjson.encode({t = target, d = dep, s = state, r = result or ''}))
    n = n + 1
  end
  return n
end

local function dependents_out(jk, outbox, dep, state, result)
  local dn = redis.call('HGET', jk, 'dn')
  if not dn then return 0 end
  redis.call('HDEL', jk, 'dn')
  return dependents_push(dn, outbox, dep, state, result)
end

-- Remove a job from the ready structures (cancel of a waiting job); g: its group, if any.
local function drop_ready(wait, prio, id, g)
  if g then
    local base = base_of(wait, 'wait')
    local n = redis.call('LREM', gkey(base, g, 'wait'), 1, id) + redis.call('ZREM', gkey(base, g, 'prio'), id)
    if n > 0 then redis.call('DECR', base .. 'gready') end
    return
  end
  redis.call('LREM', wait, 1, id)
  redis.call('ZREM', prio, id)
end
