"""A private CA made for one benchmark run, and a certificate for 127.0.0.1 (or the
addresses given) signed by it (the openssl command), for serving a bench site over HTTPS.
Nothing leaves the folder."""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess


class Pki:
    """ca.pem (give it to the crawler as TLS_CA_BUNDLE), server.pem and server.key."""

    def __init__(self, folder: str, ip: str = "127.0.0.1", more_ips: tuple = ()) -> None:
        if shutil.which("openssl") is None:
            raise SystemExit("error: TLS needs the openssl command")
        self.dir = folder
        os.makedirs(folder, mode=0o755)
        self.ca, self.cert, self.key = (os.path.join(folder, n)
                                        for n in ("ca.pem", "server.pem", "server.key"))
        ca_key, csr = os.path.join(folder, "ca.key"), os.path.join(folder, "server.csr")
        ext = os.path.join(folder, "server.ext")
        with open(ext, "w") as f:
            names = ",".join(f"IP:{a}" for a in (ip, *more_ips))
            f.write(f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for argv in (["req", "-x509", *ec, "-keyout", ca_key, "-out", self.ca, "-days", "2",
                      "-subj", "/CN=bench CA"],
                     ["req", *ec, "-keyout", self.key, "-out", csr, "-subj", f"/CN={ip}"],
                     ["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key,
                      "-CAcreateserial", "-out", self.cert, "-days", "2", "-extfile", ext]):
            subprocess.run(["openssl", *argv], check=True, capture_output=True, timeout=60)
        for name in os.listdir(folder):  # nginx's workers may run as another user
            os.chmod(os.path.join(folder, name), 0o644)

    def nginx_directives(self) -> str:
        """The ssl lines of an nginx server block: TLS 1.2 and 1.3, sessions resumable."""
        return (f"ssl_certificate {self.cert}; ssl_certificate_key {self.key}; "
                "ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m; "
                "ssl_session_tickets on;")

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx
