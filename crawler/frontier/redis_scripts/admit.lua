-- admit: ARGV obey, page_limit, then a links section. Returns how many were new.
local obey, page_limit = arg() == '1', num()
local new, grown = admit_section(obey, page_limit, nil)
schedule_all(grown)
add_entry({})  -- downloads HOST_PAGE_LIMIT refused
return done(new)
