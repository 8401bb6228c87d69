-- complete: ARGV obey, page_limit, throttle_args (3), count, then per result: lease id,
-- outcome, reason, robots value, crawl delay, latency, ok, pause, bytes, counters
-- ("dropped/reason=count,spider/name=count,..."), items blob, how many links; then one
-- links section with every result's links in order (admitted once for the batch). The
-- accepted pages' items (and WARC records) go in one stream entry, with the downloads
-- settled. Returns the accepted ids.
local obey, page_limit = arg() == '1', num()
local auto = throttle_args()
local accepted, keep, settled, taken, ids, entry = {}, {}, {}, 0, {}, {}
local count = num()
for k = 1, count do ids[k] = ARGS[at + 12 * (k - 1)] end  -- 12 arguments a result
local records = take_leases(ids)
for k = 1, count do
  local id, outcome, reason, robots, crawl_delay = arg(), arg(), arg(), arg(), num()
  local latency, ok, pause, bytes, dropped, items = num(), arg() == '1', num(), num(), arg(), arg()
  local links = num()
  local host, st, level, member = free_slot(records[k])
  if host == nil then
    stat('stale_results', 1)
  else
    accepted[#accepted + 1] = id
    settled[#settled + 1] = host
    if outcome == 'retry' then
      retry(host, st, level, member, reason)
    elseif level == '-inf' then
      local _, _, _, url = fields(member)
      if outcome ~= 'done' then robots = 'unavailable\t' .. reason end
      set_robots(host, st, url, robots, crawl_delay)
    else
      local _, _, _, url, _, media = fields(member)
      finish(host, url, outcome, reason, media)
    end
    throttle(st, latency, ok, pause, auto)
    if spaced(st) then st.next = math.max(st.next, NOW + spacing(st)) end
    save_host(host, st)
    stat('bytes', bytes)
    -- the worker sends a retry's or robots.txt's WARC records only, never its items
    if items ~= '' then entry[#entry + 1], entry[#entry + 2] = tostring(k), items end
    if outcome ~= 'retry' and level ~= '-inf' then
      for r, c in string.gmatch(dropped, '([^=,]+)=(%d+)') do stat(r, tonumber(c)) end
      for j = taken + 1, taken + links do keep[j] = true end
    end
  end
  taken = taken + links
end
local _, grown = admit_section(obey, page_limit, keep)
add_entry(entry)  -- the batch's items in one stream entry, a field a page
for _, host in ipairs(grown) do settled[#settled + 1] = host end
schedule_all(settled)
return done(accepted)
