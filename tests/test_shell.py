"""crawler.shell: a real `python -m crawler.shell URL -c CODE` against a loopback site."""
import os
import socket

from badserver import BadServer
from procs import free_port
from test_e2e import title_of


def run_shell(procs, project, *args, name="shell"):
    proc = procs.module("crawler.shell", [*args], project, name)
    proc.wait(20)
    return proc


def test_response_selectors_fetch_and_view(site, project, procs):
    code = ("print('title:', response.css('title::text').get())\n"
            "fetch(response.urljoin('/book/3.html'))\n"
            "print('second:', response.css('h1::text').get(), response.status)\n"
            "print('ua:', settings['USER_AGENT'])\n"
            "view()\n")
    (project / "settings.py").write_text("USER_AGENT = 'shell-test/1'\n")
    shell = run_shell(procs, project, site.url, "--nolog", "-s", "DOWNLOAD_TIMEOUT=5",
                      "-c", code)
    assert shell.returncode == 0, shell.describe()
    lines = shell.stdout.splitlines()
    assert f"title: {title_of(site, '/')}" in lines, shell.describe()
    assert f"second: {title_of(site, '/book/3.html')} 200" in lines, shell.describe()
    assert "ua: shell-test/1" in lines
    assert ("/book/3.html", "shell-test/1") in site.agents  # fetched with the settings' agent
    path = lines[-1]
    assert os.path.exists(path), shell.describe()
    with open(path, "rb") as f:
        assert f.read() == site.site.render("/book/3.html")[2]
    os.unlink(path)


def test_an_error_status_is_a_response(site, project, procs):
    shell = run_shell(procs, project, site.url + "nothing-here", "--nolog", "-c",
                      "print('status:', response.status)")
    assert shell.returncode == 0, shell.describe()
    assert "status: 404" in shell.stdout, shell.describe()


def test_bad_url_exits_2(project, procs):
    shell = run_shell(procs, project, "ftp://example.invalid/x", "-c", "print('ran')")
    assert shell.returncode == 2, shell.describe()
    assert "not an http(s) URL" in shell.stderr and "ran" not in shell.stdout


def test_bad_setting_exits_2(site, project, procs):
    shell = run_shell(procs, project, site.url, "-s", "NO_SUCH_SETTING=1", "-c", "print('ran')")
    assert shell.returncode == 2, shell.describe()
    assert "NO_SUCH_SETTING" in shell.stderr and "ran" not in shell.stdout


def test_failed_fetch_prints_the_reason(project, procs):
    port = free_port()  # nothing listens there
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    shell = run_shell(procs, project, f"http://127.0.0.1:{port}/", "--nolog", "-c",
                      "print('response:', response)")
    assert shell.returncode == 0, shell.describe()
    assert "fetch failed: connection" in shell.stderr, shell.describe()
    assert "response: None" in shell.stdout


def test_follows_redirects_up_to_the_limit(project, procs):
    server = BadServer().start()
    server.routes["/moved"] = lambda ex: ex.respond("302 Found", b"",
                                                    headers={"Location": "/cp1251-meta"})
    try:
        shell = run_shell(procs, project, server.url("/moved"), "--nolog", "-s",
                          "REDIRECT_MAX_TIMES=3", "-c",
                          "print('title:', response.css('title::text').get(), response.url)\n"
                          "fetch(response.urljoin('/loop'))\n"
                          "print('loop:', response.status)")
    finally:
        server.close()
    assert shell.returncode == 0, shell.describe()
    assert f"title: Привет {server.url('/cp1251-meta')}" in shell.stdout, shell.describe()
    assert "loop: 302" in shell.stdout, shell.describe()
    assert [r.path for r in server.received].count("/loop") == 4  # the first, 3 redirects
