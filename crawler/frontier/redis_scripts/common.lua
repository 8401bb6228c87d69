-- Helpers shared by every step (each step's file is appended to this one).
-- KEYS[1] is the shard's stats key, "<prefix>stats": every key a step touches starts with
-- that prefix, whose hash tag puts the shard in one slot of a Redis Cluster.
-- A queued entry ("member") is: attempt TAB max_retries TAB host TAB url TAB blob, the
-- blob being the task as restricted pickle (opaque here). A host's queue is one list per
-- level, "q:<host>:<level>" (the level is the tasks' priority, or "-inf" for robots.txt
-- tasks), and "qp:<host>", a sorted set of the levels holding tasks, first the one to
-- lease from ("-inf", then the highest priority). A lease record (and a delayed retry) is:
-- worker TAB level TAB member (level TAB member). A media task (FilesPipeline,
-- ImagesPipeline) has "<max_retries>m<hex fingerprint>" as its second field: its outcome is
-- kept in the hash "media" (hex fp -> "done TAB status TAB checksum" | "failed TAB reason")
-- and told to the master in the items stream (field "media"), in the step that settles it.
local P = string.sub(KEYS[1], 1, -6)
local ARGS, at = ARGV, 1

local function arg()
  local v = ARGS[at]
  at = at + 1
  return v
end

local function num()
  return tonumber(arg())
end

local NOW = num()
if NOW == nil then
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local RANDS = {}
for r in string.gmatch(arg(), '[^,]+') do RANDS[#RANDS + 1] = tonumber(r) end
local rand_at = 0
local function rand()
  rand_at = rand_at % #RANDS + 1
  return RANDS[rand_at]
end

local function fields(member)
  local a = string.find(member, '\t', 1, true)
  local b = string.find(member, '\t', a + 1, true)
  local c = string.find(member, '\t', b + 1, true)
  local d = string.find(member, '\t', c + 1, true)
  local max, media = string.sub(member, a + 1, b - 1), nil
  local m = string.find(max, 'm', 1, true)
  if m then max, media = string.sub(max, 1, m - 1), string.sub(max, m + 1) end
  return tonumber(string.sub(member, 1, a - 1)), tonumber(max),
    string.sub(member, b + 1, c - 1), string.sub(member, c + 1, d - 1), string.sub(member, d + 1),
    media
end

local function split2(value)
  local a = string.find(value, '\t', 1, true)
  local b = string.find(value, '\t', a + 1, true)
  return string.sub(value, 1, a - 1), string.sub(value, a + 1, b - 1), string.sub(value, b + 1)
end

-- One command over a long list of arguments, in chunks (Lua's unpack() has a limit);
-- bulk_ask gives the replies (one per argument) as one list.
local function bulk(cmd, key, list)
  for i = 1, #list, 4000 do
    redis.call(cmd, key, unpack(list, i, math.min(#list, i + 3999)))
  end
end

local function bulk_ask(cmd, key, list)
  local out = {}
  for i = 1, #list, 4000 do
    local reply = redis.call(cmd, key, unpack(list, i, math.min(#list, i + 3999)))
    for k = 1, #reply do out[i + k - 1] = reply[k] end
  end
  return out
end

-- Counters are summed in STATS, and the changes of hosts' queue lengths (the sorted set
-- qlen, for the status page) in QLEN: written when the step ends (done()), once per
-- counter, and in one ZMSCORE and one ZADD for all the hosts.
local STATS, QLEN, QHOSTS = {}, {}, {}
local function stat(name, by)
  STATS[name] = (STATS[name] or 0) + by
end

local function qlen(host, by)
  if QLEN[host] == nil then
    QHOSTS[#QHOSTS + 1] = host
    QLEN[host] = 0
  end
  QLEN[host] = QLEN[host] + by
end

local function done(value)
  for name, by in pairs(STATS) do
    if by ~= 0 then redis.call('HINCRBY', P .. 'stats', name, by) end
  end
  local lengths, old = {}, bulk_ask('ZMSCORE', P .. 'qlen', QHOSTS)
  for k, host in ipairs(QHOSTS) do
    lengths[#lengths + 1] = (tonumber(old[k]) or 0) + QLEN[host]
    lengths[#lengths + 1] = host
  end
  bulk('ZADD', P .. 'qlen', lengths)
  return value
end

local HOSTF = {'inflight', 'limit', 'rp', 'next', 'delay', 'cd', 'rnd', 'floor'}
local function host_state(host)
  local v = redis.call('HMGET', P .. 'h:' .. host, unpack(HOSTF))
  return {inflight = tonumber(v[1]) or 0, limit = tonumber(v[2]) or 8, rp = tonumber(v[3]) or 0,
          next = tonumber(v[4]) or 0, delay = tonumber(v[5]) or 0, cd = tonumber(v[6]) or 0,
          rnd = v[7] == '1', floor = tonumber(v[8]) or 0}
end

local function spaced(st)
  return st.delay > 0 or st.cd > 0
end

local function spacing(st)
  local s = st.delay
  if st.rnd then s = s * (0.5 + rand()) end
  if st.cd > s then return st.cd end
  return s
end

-- AutoThrottle (as crawler.frontier.throttle.Throttle.adjust) and Retry-After, on a host's
-- state after a response; `auto` is {enabled, target concurrency, max delay} (throttle_args).
local function throttle(st, latency, ok, pause, auto)
  if latency and auto[1] then
    local proposed = (st.delay + latency / auto[2]) / 2
    if ok or proposed >= st.delay then
      st.delay = math.min(math.max(proposed, st.floor), math.max(auto[3], st.floor))
    end
    st.next = math.max(st.next, NOW + spacing(st))
  end
  if pause > 0 then st.next = math.max(st.next, NOW + pause) end
end

local function throttle_args()
  return {arg() == '1', num(), num()}
end

-- Put a host in the ready set (at its next allowed time) when it has work it may lease.
local function schedule(host, st)
  if st.inflight >= st.limit then return end
  if redis.call('ZSCORE', P .. 'ready', host) then return end
  local first = redis.call('ZRANGE', P .. 'qp:' .. host, 0, 0)
  if #first == 0 then return end
  if st.rp > 0 and first[1] ~= '-inf' then return end
  redis.call('ZADD', P .. 'ready', 'NX', st.next, host)
end

-- schedule() for each host of a list not in the ready set yet (one ZMSCORE for all).
local function schedule_all(list)
  local uniq, listed = {}, {}
  for _, host in ipairs(list) do
    if not listed[host] then
      listed[host] = true
      uniq[#uniq + 1] = host
    end
  end
  if #uniq == 0 then return end
  local ready = bulk_ask('ZMSCORE', P .. 'ready', uniq)
  for i, host in ipairs(uniq) do
    if not ready[i] then schedule(host, host_state(host)) end
  end
end

local function qkey(host, level)
  return P .. 'q:' .. host .. ':' .. level
end

-- Add members[i..j] to a level of a host's queue (at its head when `front`: a task that
-- comes back goes before those admitted after it); the level joins qp:<host> when new.
local function push(host, level, members, i, j, front)
  local n = redis.call(front and 'LPUSH' or 'RPUSH', qkey(host, level), unpack(members, i, j))
  if n == j - i + 1 then
    redis.call('ZADD', P .. 'qp:' .. host, level == '-inf' and '-inf' or -tonumber(level), level)
  end
end

-- Up to `count` tasks off a level of a host's queue; the level leaves qp:<host> when empty.
local function pop(host, level, count)
  local key = qkey(host, level)
  local got = redis.call('LPOP', key, count) or {}
  if #got < count or redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', P .. 'qp:' .. host, level)
  end
  return got
end

local function enqueue(host, level, member, front)
  push(host, level, {member}, 1, 1, front)
  qlen(host, 1)
  stat('queued', 1)
end

-- Media outcomes settled by this step: kept for good, and listed for the items stream.
local MEDIA = {}
local function media_settled(fp, value)
  redis.call('HSET', P .. 'media', fp, value)
  MEDIA[#MEDIA + 1] = fp .. '\t' .. value
end

-- The step's stream entry (fields, values in `entry`) with the media it settled, if any.
local function add_entry(entry)
  if #MEDIA > 0 then entry[#entry + 1], entry[#entry + 2] = 'media', table.concat(MEDIA, '\n') end
  if #entry > 0 then redis.call('XADD', P .. 'items', '*', unpack(entry)) end
end

-- A page or download settled for good; `media` (a media task's fp) keeps its outcome, and
-- a done download's `reason` is "status TAB checksum".
local function finish(host, url, outcome, reason, media)
  if media then
    media_settled(media, (outcome == 'failed' and 'failed\t' or 'done\t') .. reason)
  end
  stat(outcome, 1)
  if outcome == 'failed' then
    stat('failed/' .. reason, 1)
    redis.call('RPUSH', P .. 'failures', reason .. '\t' .. url)
    redis.call('LPUSH', P .. 'ex:' .. reason, url)
    redis.call('LTRIM', P .. 'ex:' .. reason, 0, 2)
    redis.call('HINCRBY', P .. 'h:' .. host, 'failed', 1)
    redis.call('HSET', P .. 'h:' .. host, 'err', reason)
    redis.call('ZINCRBY', P .. 'hfail', 1, host)
  else
    redis.call('HINCRBY', P .. 'h:' .. host, 'done', 1)
  end
end

local function set_robots(host, st, url, value, crawl_delay)
  st.rp = st.rp - 1
  local origin = string.sub(url, 1, -12)  -- without "/robots.txt"
  redis.call('HSET', P .. 'robots:' .. host, origin, value)
  if string.sub(value, 1, 3) == 'ok\t' then
    if crawl_delay > st.cd then st.cd = crawl_delay end
    stat('robots_fetched', 1)
  else
    redis.call('HSET', P .. 'h:' .. host, 'err', 'robots_unavailable:' .. string.sub(value, 13))
    stat('robots_unavailable', 1)
  end
  redis.call('HSET', P .. 'h:' .. host, 'rp', st.rp, 'cd', st.cd)
end

-- A retry: back to the queue after a backoff, or failed when attempts are used up.
local function retry(host, st, level, member, reason)
  local attempt, max, _, url, _, media = fields(member)
  attempt = attempt + 1
  if attempt > max then
    if level == '-inf' then
      set_robots(host, st, url, 'unavailable\t' .. reason, 0)
    else
      finish(host, url, 'failed', reason, media)
    end
    return
  end
  stat('retries', 1)
  stat('queued', 1)
  redis.call('HSET', P .. 'h:' .. host, 'err', reason)
  local backoff = math.min(30.0, 0.5 * 2 ^ (attempt - 1)) * (0.5 + rand())
  local again = attempt .. string.sub(member, (string.find(member, '\t', 1, true)))
  redis.call('ZADD', P .. 'delayed', NOW + backoff, level .. '\t' .. again)
end

-- Take leases off the books: one HMGET, HDEL and ZREM for all the ids. Their records, in
-- order; false for a lease unknown (settled, expired or of another run) or listed twice.
local function take_leases(ids)
  local values, found, taken = bulk_ask('HMGET', P .. 'leases', ids), {}, {}
  for i, id in ipairs(ids) do
    if values[i] and not taken[id] then
      taken[id] = true
      found[#found + 1] = id
    else
      values[i] = false
    end
  end
  bulk('HDEL', P .. 'leases', found)
  bulk('ZREM', P .. 'expiry', found)
  return values
end

-- A taken lease's host has a free slot again. Returns host, state, level, member, worker;
-- nil for no record.
local function free_slot(value)
  if not value then return nil end
  local worker, level, member = split2(value)
  local _, _, host = fields(member)
  local st = host_state(host)
  st.inflight = st.inflight - 1
  return host, st, level, member, worker
end

local function unlease(id)
  return free_slot(take_leases({id})[1])
end

local function save_host(host, st)
  redis.call('HSET', P .. 'h:' .. host, 'inflight', st.inflight, 'next', st.next,
             'delay', st.delay)
end

-- New hosts (of names[i] for i in `used`) get their settings, params[i] ("limit delay rnd
-- floor"); one call for all the known ones.
local function register_hosts(names, params, used)
  local list = {}
  for i in pairs(used) do list[#list + 1] = i end
  if #list == 0 then return end
  local asked = {}
  for k, i in ipairs(list) do asked[k] = names[i] end
  local known = bulk_ask('SMISMEMBER', P .. 'hosts', asked)
  local fresh = {}
  for k, i in ipairs(list) do
    if known[k] == 0 then
      local name, v = names[i], {}
      for w in string.gmatch(params[i], '%S+') do v[#v + 1] = w end
      fresh[#fresh + 1] = name
      redis.call('HSET', P .. 'h:' .. name, 'limit', v[1], 'delay', v[2], 'rnd', v[3],
                 'floor', v[4], 'next', 0, 'inflight', 0, 'rp', 0, 'cd', 0, 'adm', 0)
    end
  end
  bulk('SADD', P .. 'hosts', fresh)
end

-- Admission of a batch of links (from ARGV at the cursor): host table, origin table, then
-- the tasks (their count, and one argument holding them all); with `keep`, only the tasks
-- whose index it holds (the others' pages were stale). Returns how many were new, and the
-- hosts whose queue grew (for schedule_all).
local function admit_section(obey, page_limit, keep)
  local hosts, params = {}, {}
  for i = 1, num() do
    hosts[i], params[i] = ARGS[at], ARGS[at + 1]
    at = at + 2
  end
  local origins = {}
  for _ = 1, num() do origins[#origins + 1] = {arg(), arg()} end  -- origin, robots member
  local fps, his, prios, ois, donts, members, used = {}, {}, {}, {}, {}, {}, {}
  local total, blob = num(), arg()
  local pos, n = 1, 0
  for i = 1, total do  -- each task: head, fingerprint, member (redis_args.links_section)
    local hi, prio, oi, dont, fl, ml, from = struct.unpack('>IlIBHI', blob, pos)
    pos = from + fl + ml
    if keep == nil or keep[i] then
      n = n + 1
      fps[n], his[n], prios[n], ois[n], donts[n] = string.sub(blob, from, from + fl - 1), hi,
        string.format('%d', prio), oi, dont == 1
      members[n] = string.sub(blob, from + fl, pos - 1)
      used[hi] = true
    end
  end
  register_hosts(hosts, params, used)
  local seen, known = P .. 'seen', {}
  local found = bulk_ask('SMISMEMBER', seen, fps)  -- one call per 4,000 links
  for i = 1, n do
    if found[i] == 1 then known[fps[i]] = true end
  end
  local new, dup, capped, added, fresh, per_host = 0, 0, 0, {}, {}, {}
  for i = 1, n do
    local fp, hi = fps[i], his[i]
    local host = hosts[hi]
    local is_new = donts[i] or not known[fp]
    if is_new and page_limit > 0 then
      local adm = added[host]
      if adm == nil then
        adm = tonumber(redis.call('HGET', P .. 'h:' .. host, 'adm')) or 0
      end
      if adm >= page_limit then
        is_new = false
        capped = capped + 1
        local _, _, _, _, _, media = fields(members[i])
        if media then media_settled(media, 'failed\thost_page_limit') end
      end
      added[host] = adm + (is_new and 1 or 0)
    elseif not is_new then
      dup = dup + 1
    end
    if is_new then
      if not known[fp] then
        known[fp] = true
        fresh[#fresh + 1] = fp
      end
      if obey and ois[i] > 0 then
        local o = origins[ois[i]]
        if redis.call('HSETNX', P .. 'robots:' .. host, o[1], '') == 1 then
          redis.call('HINCRBY', P .. 'h:' .. host, 'rp', 1)
          enqueue(host, '-inf', o[2], false)
        end
      end
      local levels = per_host[hi]
      if levels == nil then
        levels = {}
        per_host[hi] = levels
      end
      local list = levels[prios[i]]
      if list == nil then
        list = {}
        levels[prios[i]] = list
      end
      list[#list + 1] = members[i]
      new = new + 1
    end
  end
  bulk('SADD', seen, fresh)
  local order = {}
  for hi, levels in pairs(per_host) do
    local host, count = hosts[hi], 0
    order[#order + 1] = host
    for level, list in pairs(levels) do
      for i = 1, #list, 4000 do push(host, level, list, i, math.min(#list, i + 3999), false) end
      count = count + #list
    end
    qlen(host, count)
    if page_limit > 0 then redis.call('HSET', P .. 'h:' .. host, 'adm', added[host]) end
  end
  stat('queued', new)
  stat('admitted', new)
  stat('duplicates', dup)
  stat('dropped/host_page_limit', capped)
  return new, order
end
