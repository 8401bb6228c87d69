-- complete: ARGV obey, page_limit, auto (AutoThrottle: 1/0), target, max_delay, count, then
-- per result: lease id, outcome, reason, robots value, crawl delay, latency, ok, pause,
-- bytes, dropped ("reason=count,..."), items blob, links section. Returns the accepted ids.
local obey, page_limit = arg() == '1', num()
local auto, target, max_delay = arg() == '1', num(), num()
local accepted = {}
for _ = 1, num() do
  local id, outcome, reason, robots, crawl_delay = arg(), arg(), arg(), arg(), num()
  local latency, ok, pause, bytes, dropped, items = num(), arg() == '1', num(), num(), arg(), arg()
  local host, st, score, member = unlease(id)
  if host == nil then
    stat('stale_results', 1)
    at = at + 1 + num()
  else
    accepted[#accepted + 1] = id
    if outcome == 'retry' then
      retry(host, st, score, member, reason)
    elseif score == '-inf' then
      local _, _, _, url = fields(member)
      if outcome ~= 'done' then robots = 'unavailable\t' .. reason end
      set_robots(host, st, url, robots, crawl_delay)
    else
      local _, _, _, url = fields(member)
      finish(host, url, outcome, reason)
    end
    if latency and auto then  -- AutoThrottle, as crawler.frontier.throttle.Throttle.adjust
      local proposed = (st.delay + latency / target) / 2
      if ok or proposed >= st.delay then
        st.delay = math.min(math.max(proposed, st.floor), math.max(max_delay, st.floor))
      end
      st.next = math.max(st.next, NOW + spacing(st))
    end
    if pause > 0 then st.next = math.max(st.next, NOW + pause) end
    if spaced(st) then st.next = math.max(st.next, NOW + spacing(st)) end
    save_host(host, st)
    stat('bytes', bytes)
    if outcome ~= 'retry' and score ~= '-inf' then
      for r, c in string.gmatch(dropped, '([^=,]+)=(%d+)') do stat('dropped/' .. r, tonumber(c)) end
      if items ~= '' then redis.call('XADD', P .. 'items', '*', 'i', items) end
      at = at + 1
      admit_section(obey, page_limit)
    else
      at = at + 1 + num()
    end
    schedule(host, host_state(host))
  end
end
return accepted
