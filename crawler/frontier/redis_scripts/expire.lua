-- expire: leases whose deadline passed go back to the queue (an attempt). Returns how many.
local count = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'expiry', '-inf', NOW, 'LIMIT', 0, 10000)) do
  local host, st, level, member = unlease(id)
  if host ~= nil then
    stat('leases_expired', 1)
    retry(host, st, level, member, 'lease_expired')
    save_host(host, st)
    schedule(host, st)
    count = count + 1
  end
end
add_entry({})  -- downloads whose last attempt expired
return done(count)
