-- feedback: ARGV host, latency, ok, pause, auto, target, max_delay (see complete.lua).
local host, latency, ok, pause = arg(), num(), arg() == '1', num()
local auto, target, max_delay = arg() == '1', num(), num()
if redis.call('SISMEMBER', P .. 'hosts', host) == 0 then return 0 end
local st = host_state(host)
if latency and auto then
  local proposed = (st.delay + latency / target) / 2
  if ok or proposed >= st.delay then
    st.delay = math.min(math.max(proposed, st.floor), math.max(max_delay, st.floor))
  end
  st.next = math.max(st.next, NOW + spacing(st))
end
if pause > 0 then st.next = math.max(st.next, NOW + pause) end
save_host(host, st)
return 1
