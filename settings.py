"""Project settings: they override the framework defaults (crawler/default_settings.py)
and are overridden by a spider's custom_settings and by -s NAME=VALUE."""

# Identify your crawler and give site owners a way to reach you.
USER_AGENT = "crawler-example/0.1 (+mailto:you@example.org)"

# Obey robots.txt.
ROBOTSTXT_OBEY = True

# Requests in flight to one host, across all workers together.
CONCURRENT_REQUESTS_PER_DOMAIN = 8
