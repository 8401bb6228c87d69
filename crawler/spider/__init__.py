"""What runs the user's code: the Spider classes (SitemapSpider's sitemap reading too), finding
spiders by name, and the handler that turns a leased task into a result (fetch, callback,
vetting of what it yields)."""
