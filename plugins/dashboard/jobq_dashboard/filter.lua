-- A filtered page of one state's job ids, newest first. Read-only, and bounded: it looks at no more
-- than a scan budget of ids, so a page costs the same with 10^6 jobs as with 10.
-- KEYS: 1 the state's zset (the prio zset for waiting), 2 the wait list (waiting only)
-- ARGV: 1 job key prefix, 2 '1' for waiting, 3 offset, 4 scan budget, 5 page size, 6 id prefix,
--       7 name ('' = any), 8 reason code ('' = any)
-- Returns {next position (-1: the end), id, ...}
local jp, waiting = ARGV[1], ARGV[2] == '1'
local pos, budget, size = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local pfx, name, code = ARGV[6], ARGV[7], ARGV[8]
local nprio = waiting and redis.call('ZCARD', KEYS[1]) or 0

local function window(start, n)
  if not waiting then return redis.call('ZREVRANGE', KEYS[1], start, start + n - 1) end
  local ids = {}
  if start < nprio then ids = redis.call('ZRANGE', KEYS[1], start, start + n - 1) end
  if #ids < n then
    local first = math.max(0, start - nprio)
    for _, id in ipairs(redis.call('LRANGE', KEYS[2], first, first + n - #ids - 1)) do ids[#ids + 1] = id end
  end
  return ids
end

local out, stop = {-1}, pos + budget
while pos < stop do
  local ids = window(pos, math.min(500, stop - pos))
  for i, id in ipairs(ids) do
    if string.sub(id, 1, #pfx) == pfx then
      local ok = true
      if name ~= '' or code ~= '' then
        local f = redis.call('HMGET', jp .. id, 'name', 'code')
        ok = (name == '' or f[1] == name) and (code == '' or f[2] == code)
      end
      if ok then
        out[#out + 1] = id
        if #out - 1 == size then out[1] = pos + i; return out end
      end
    end
  end
  if #ids < math.min(500, stop - pos) then return out end
  pos = pos + #ids
end
out[1] = pos
return out
