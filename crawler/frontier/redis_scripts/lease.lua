-- lease: ARGV worker, n, lease_timeout, shard, then lease ids to renew (a heartbeat).
-- Returns {state, wait hint, id, level, member, ...}; no tasks unless state is "running".
local worker, n, timeout, shard = arg(), num(), num(), arg()
redis.call('HSET', P .. 'workers', worker, NOW)
for i = at, #ARGS do
  local value = redis.call('HGET', P .. 'leases', ARGS[i])
  if value and string.sub(value, 1, #worker + 1) == worker .. '\t' then
    redis.call('ZADD', P .. 'expiry', 'XX', NOW + timeout, ARGS[i])
  end
end
local state = redis.call('GET', P .. 'state') or 'running'
local out = {state, '0'}
if state ~= 'running' or n <= 0 then return out end
-- retries whose backoff is over go back to their host's queue
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', P .. 'delayed', entry)
  stat('queued', -1)
  local tab = string.find(entry, '\t', 1, true)
  local level, member = string.sub(entry, 1, tab - 1), string.sub(entry, tab + 1)
  local _, _, host = fields(member)
  enqueue(host, level, member, true)
  schedule(host, host_state(host))
end
local taken, records, expiry = 0, {}, {}
local lease_seq = tonumber(redis.call('GET', P .. 'lease_seq')) or 0
for _, host in ipairs(redis.call('ZRANGEBYSCORE', P .. 'ready', '-inf', NOW, 'LIMIT', 0, n)) do
  if taken >= n then break end
  local st = host_state(host)
  if st.next > NOW then
    redis.call('ZADD', P .. 'ready', st.next, host)  -- pushed back since it was scheduled
  else
    redis.call('ZREM', P .. 'ready', host)
    local room = math.min(n - taken, st.limit - st.inflight)
    if spaced(st) then room = math.min(room, 1) end
    local got = 0
    while room > 0 do
      local first = redis.call('ZRANGE', P .. 'qp:' .. host, 0, 0)
      if #first == 0 then break end
      local level = first[1]
      if st.rp > 0 and level ~= '-inf' then break end  -- waiting for robots.txt
      local popped = pop(host, level, level == '-inf' and 1 or room)
      for _, member in ipairs(popped) do
        lease_seq = lease_seq + 1
        local id = shard .. '-' .. lease_seq
        records[#records + 1] = id
        records[#records + 1] = worker .. '\t' .. level .. '\t' .. member
        expiry[#expiry + 1], expiry[#expiry + 2] = NOW + timeout, id
        out[#out + 1], out[#out + 2], out[#out + 3] = id, level, member
        got, room = got + 1, room - 1
      end
      if level == '-inf' and st.rp > 0 then room = 0 end  -- only robots.txt until settled
    end
    st.inflight, taken = st.inflight + got, taken + got
    if got > 0 then
      qlen(host, -got)
      stat('queued', -got)
      if spaced(st) then st.next = NOW + spacing(st) end
      save_host(host, st)
    end
    schedule(host, st)
  end
end
if #records > 0 then  -- the leases taken, in one call each
  redis.call('SET', P .. 'lease_seq', lease_seq)
  bulk('HSET', P .. 'leases', records)
  bulk('ZADD', P .. 'expiry', expiry)
end
do
  local times = {}
  local r = redis.call('ZRANGE', P .. 'ready', 0, 0, 'WITHSCORES')
  if #r > 0 then times[#times + 1] = tonumber(r[2]) end
  local d = redis.call('ZRANGE', P .. 'delayed', 0, 0, 'WITHSCORES')
  if #d > 0 then times[#times + 1] = tonumber(d[2]) end
  if #times > 0 then
    out[2] = tostring(math.max(0, math.min(unpack(times)) - NOW))
  elseif redis.call('HLEN', P .. 'leases') > 0 then
    out[2] = '0.05'  -- hosts at their cap free up as results arrive
  else
    out[2] = '0.5'
  end
end
return done(out)
