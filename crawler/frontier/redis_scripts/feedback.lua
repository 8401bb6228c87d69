-- feedback: ARGV host, latency, ok, pause, then throttle_args (see common.lua).
local host, latency, ok, pause = arg(), num(), arg() == '1', num()
local auto = throttle_args()
if redis.call('SISMEMBER', P .. 'hosts', host) == 0 then return 0 end
local st = host_state(host)
throttle(st, latency, ok, pause, auto)
save_host(host, st)
return 1
