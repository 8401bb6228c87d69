"""crawler.seeds: reading and checking the seeds file."""
import pytest

from crawler import UsageError
from crawler.seeds import parse_seeds, read_seeds


def test_comments_blank_lines_whitespace_and_normalization(tmp_path):
    path = tmp_path / "seeds.txt"
    path.write_text("# my seeds\n"
                    "\n"
                    "HTTP://Example.COM:80/a/../b#top\n"
                    "   \t\n"
                    "   https://other.org   \n"
                    "  # indented comment\n"
                    "http://Bücher.example/\n", encoding="utf-8")
    assert list(read_seeds(str(path))) == ["http://example.com/b", "https://other.org/",
                                     "http://xn--bcher-kva.example/"]


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "seeds.txt"
    path.write_bytes(b"http://a.example/\r\nhttp://b.example/\r\n")
    assert list(read_seeds(str(path))) == ["http://a.example/", "http://b.example/"]


def test_empty_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "seeds.txt"
    path.write_text("# nothing yet\n\n")
    with pytest.raises(UsageError, match=f"seeds file {path} holds no URLs"):
        read_seeds(str(path))


def test_utf8_bom_at_start_is_ignored(tmp_path):
    path = tmp_path / "seeds.txt"
    path.write_bytes(b"\xef\xbb\xbfhttp://example.com/\n")
    assert list(read_seeds(str(path))) == ["http://example.com/"]


@pytest.mark.parametrize("bad", ["ftp://example.com/", "mailto:x@example.com", "example.com",
                                 "http://example.com:99999/", "http://exa mple.com/",
                                 "http://example.com/a page"])
def test_malformed_line_names_its_number(bad):
    lines = ["# header", "http://ok.example/", "", bad, "http://later.example/"]
    with pytest.raises(UsageError) as info:
        parse_seeds(lines, "seeds.txt")
    message = str(info.value)
    assert message.startswith("seeds.txt:4:")
    assert repr(bad) in message


def test_first_bad_line_is_reported(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("http://ok.example/\njavascript:x\nnot a url\n")
    with pytest.raises(UsageError, match=r"list\.txt:2:"):
        read_seeds(str(path))


def test_missing_file(tmp_path):
    path = tmp_path / "absent.txt"
    with pytest.raises(UsageError) as info:
        read_seeds(str(path))
    assert "absent.txt" in str(info.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(UsageError):
        read_seeds(str(tmp_path))


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("http://example.com/café\n".encode("latin-1"))
    with pytest.raises(UsageError, match="not UTF-8"):
        read_seeds(str(path))


@pytest.mark.parametrize("bad", ["ftp://example.com/", "mailto:x@example.com", "example.com",
                                 "http://example.com:99999/", "http://exa mple.com/",
                                 "http://example.com/a page", "http:///nohost"])
def test_a_seeds_file_is_checked_whole_before_it_is_read_lazily(bad, tmp_path):
    path = tmp_path / "seeds.txt"
    path.write_text("".join(f"http://h{i % 7}.example/p/{i}\n" for i in range(3000)) + bad + "\n")
    with pytest.raises(UsageError, match=r"seeds\.txt:3001:"):
        read_seeds(str(path))


def test_a_seeds_file_keeps_only_its_origins_until_read(tmp_path):
    path = tmp_path / "seeds.txt"
    path.write_text("".join(f"HTTP://H{i % 3}.Example:80/p/{i}\n" for i in range(10)) +
                    "https://x.example:8443?q=1\n")
    seeds = read_seeds(str(path))
    assert seeds.origins == {"http://h0.example", "http://h1.example", "http://h2.example",
                             "https://x.example:8443"}
    assert len(seeds) == 11
    assert list(seeds)[:2] == ["http://h0.example/p/0", "http://h1.example/p/1"]
    assert list(seeds) == list(seeds)  # read again each time
