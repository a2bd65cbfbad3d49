-- One dependency of a blocked job ended (in the dependent's slot). Idempotent per dependency: the
-- first report counts, repeats are ignored. The last completed dependency makes the job ready; a
-- failed, cancelled or missing one fails it ERR_DEPENDENCY_FAILED unless it was added with
-- on_dependency_failure='run'. A failed dependent passes the failure on to its own dependents.
-- KEYS: 1 job, 2 wait, 3 prio, 4 blocked, 5 events, 6 marker, 7 seq, 8 failed, 9 stats, 10 resolve
-- ARGV: 1 dependency "<queue>|<id>", 2 its state, 3 its result, 4 events maxlen, 5 "<queue>|<id>" of this job
local now = now_ms()
local jk, dep, dstate, maxlen = KEYS[1], ARGV[1], ARGV[2], ARGV[4]
local f = redis.call('HMGET', jk, 'state', 'dfail', 'prio', 'grp')
if f[1] ~= 'blocked' then return {'noop', 0} end
if redis.call('HSETNX', jk, 'd:' .. dep, dstate) == 0 then return {'dup', 0} end
local id = string.match(ARGV[5], '|(.*)$')
if dstate == 'completed' then
  if ARGV[3] ~= '' then redis.call('HSET', jk, 'r:' .. dep, ARGV[3]) end
elseif f[2] ~= 'run' then
  local msg = 'dependency ' .. dep .. ' ended ' .. dstate
  redis.call('ZREM', KEYS[4], id)
  if redis.call('HDEL', jk, 'secrets') == 1 then redis.call('HSET', jk, 'scrubbed', '1') end
  redis.call('HSET', jk, 'state', 'failed', 'finished', now, 'code', 'ERR_DEPENDENCY_FAILED', 'error', msg,
             'stack', '')
  redis.call('ZADD', KEYS[8], now, id)
  redis.call('HINCRBY', KEYS[9], 'failed:ERR_DEPENDENCY_FAILED', 1)
  emit(KEYS[5], maxlen, 'failed', id, 'code', 'ERR_DEPENDENCY_FAILED')
  return {'failed', dependents_out(jk, KEYS[10], ARGV[5], 'failed', '')}
end
if redis.call('HINCRBY', jk, 'pending', -1) > 0 then return {'pending', 0} end
redis.call('ZREM', KEYS[4], id)
redis.call('HSET', jk, 'state', 'waiting')
push_ready(KEYS[2], KEYS[3], KEYS[7], id, f[3], false, f[4])
emit(KEYS[5], maxlen, 'added', id, 'unblocked', '1')
wake(KEYS[6], 1)
return {'ready', 0}
