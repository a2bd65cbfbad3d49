-- Record that job <target> depends on this job (in this job's slot). Idempotent. Returns this job's
-- state, and its result when it has completed; 'missing' when the job does not exist.
-- KEYS: 1 job   ARGV: 1 target "<queue>|<id>"
local jk, target = KEYS[1], ARGV[1]
local f = redis.call('HMGET', jk, 'state', 'result', 'dn')
local state = f[1]
if not state then return {'missing', ''} end
if state == 'completed' or state == 'failed' or state == 'cancelled' then return {state, f[2] or ''} end
local dn = f[3] or ''
if not string.find('\n' .. dn .. '\n', '\n' .. target .. '\n', 1, true) then
  if dn == '' then dn = target else dn = dn .. '\n' .. target end
  redis.call('HSET', jk, 'dn', dn)
end
return {'pending', ''}
