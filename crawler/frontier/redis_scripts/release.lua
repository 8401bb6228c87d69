-- release: ARGV worker. Every lease it holds goes back to its queue, no attempt counted.
local worker, count = arg(), 0
local all = redis.call('HGETALL', P .. 'leases')
for i = 1, #all, 2 do
  if string.sub(all[i + 1], 1, #worker + 1) == worker .. '\t' then
    local host, st, level, member = unlease(all[i])
    enqueue(host, level, member, true)
    save_host(host, st)
    schedule(host, st)
    count = count + 1
  end
end
redis.call('HDEL', P .. 'workers', worker)
return done(count)
