-- lease: ARGV worker, n, lease_timeout, shard, then lease ids to renew (a heartbeat).
-- Returns {state, wait hint, id, score, member, ...}; no tasks unless state is "running".
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
  local score, member = string.sub(entry, 1, tab - 1), string.sub(entry, tab + 1)
  local _, _, host = fields(member)
  enqueue(host, score, member)
  schedule(host, host_state(host))
end
local taken = 0
for _, host in ipairs(redis.call('ZRANGEBYSCORE', P .. 'ready', '-inf', NOW, 'LIMIT', 0, n)) do
  if taken >= n then break end
  local st = host_state(host)
  if st.next > NOW then
    redis.call('ZADD', P .. 'ready', st.next, host)  -- pushed back since it was scheduled
  else
    redis.call('ZREM', P .. 'ready', host)
    local room = math.min(n - taken, st.limit - st.inflight)
    if spaced(st) then room = math.min(room, 1) end
    local q, got = P .. 'q:' .. host, 0
    while room > 0 do
      local popped
      if st.rp > 0 then  -- waiting for robots.txt: only its own task may leave
        popped = redis.call('ZRANGE', q, 0, 0, 'WITHSCORES')
        if #popped == 0 or popped[2] ~= '-inf' then break end
        redis.call('ZREM', q, popped[1])
      else
        popped = redis.call('ZPOPMIN', q, room)
        if #popped == 0 then break end
      end
      for i = 1, #popped, 2 do
        local id = shard .. '-' .. redis.call('INCR', P .. 'lease_seq')
        local score = popped[i + 1]
        redis.call('HSET', P .. 'leases', id, worker .. '\t' .. score .. '\t' .. popped[i])
        redis.call('ZADD', P .. 'expiry', NOW + timeout, id)
        out[#out + 1], out[#out + 2], out[#out + 3] = id, score, popped[i]
        got, room = got + 1, room - 1
        if score == '-inf' and st.rp > 0 then room = 0 end
      end
    end
    st.inflight, taken = st.inflight + got, taken + got
    if got > 0 then
      redis.call('ZINCRBY', P .. 'qlen', -got, host)
      stat('queued', -got)
      if spaced(st) then st.next = NOW + spacing(st) end
      save_host(host, st)
    end
    schedule(host, st)
  end
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
