"""The download stack: Request and Response, the fetcher and its one transport (client, http1,
tls), the address guard, body decoding, the total deadline and the failure reasons."""
