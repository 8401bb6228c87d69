"""The link between master and workers: sockets and TLS (channel), the manager protocol
(manager), the shared key (keyfile), the plain data that may travel (wire) and the checks the
master applies to it (wirecheck), a worker's calls (calls, coordinator) and a running crawl
driven from outside (remote)."""
