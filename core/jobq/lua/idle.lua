-- A worker with a free slot and nothing to do offers it to enqueue.lua until ttl passes.
-- KEYS: 1 idle   ARGV: 1 member ("<lease ms>|<worker id>"), 2 ttl ms
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
