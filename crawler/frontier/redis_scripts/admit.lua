-- admit: ARGV obey, page_limit, then a links section. Returns how many were new.
local obey, page_limit = arg() == '1', num()
at = at + 1  -- the section's length (used by complete to skip a stale result's links)
return admit_section(obey, page_limit)
