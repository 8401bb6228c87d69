"""The download stack: Request and Response, the fetcher and its transports, the address
guard, body decoding, the total deadline and the failure reasons."""
