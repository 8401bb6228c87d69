"""Copy the corpus pages from installed Debian documentation packages and write SOURCES.md.

Run once, on Debian 12 with the packages below installed (apt-get install ...), from the
repository root:  python tests/corpus/collect.py
The files are copied byte for byte; SOURCES.md records package, version, path, licence and a
SHA-256 prefix of each. Re-run make_expected.py afterwards.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = Path("/usr/share/doc")

# package -> licence of the documentation, as its /usr/share/doc/PKG/copyright gives it.
LICENCES = {
    "python3.11-doc": "PSF-2.0 (the Python licence)",
    "developers-reference": "GPL-2",
    "maint-guide": "GPL-2.0+",
    "postgresql-doc-15": "PostgreSQL",
    "libxslt1-dev": "MIT",
    "libexpat1-dev": "MIT",
    "valgrind": "GPL-2.0+",
    "libglib2.0-doc": "LGPL-2.1+",
    "libtasn1-doc": "LGPL-2.1+ (library and its reference manual)",
    "libjson-c-doc": "Expat (MIT)",
    "doxygen-doc": "GPL-2",
    "m4-doc": "GFDL-1.3+, no Invariant Sections, no Cover Texts",
    "libffi-dev": "Expat (MIT)",
    "bash-doc": "GPL-3+",
    "groff": "GPL-3+ (pic.ms: the copyright holders' stated intent, see its copyright file)",
    "apache2-doc": "Apache-2.0",
    "libjlha-java-doc-ja": "BSD-2-Clause-like (upstream text in Japanese)",
    "w3m": "w3m (permissive: redistribution with the copyright notice)",
}

# (generator folder, package, folder under /usr/share/doc, files under it), copied to
# tests/corpus/<generator>/<short name>/<same relative path>.
PAGES = [
    ("sphinx", "python3.11-doc", "python3.11-doc/html", "python", [
        "index.html", "library/getpass.html", "tutorial/appetite.html",
        "howto/sorting.html", "distributing/index.html"]),
    ("sphinx", "developers-reference", "developers-reference/docs", "developers-reference",
     ["scope.html"]),
    ("docbook-xhtml", "postgresql-doc-15", "postgresql-doc-15/html", "postgresql",
     ["index.html", "sql-createopfamily.html"]),
    ("xsltproc", "libxslt1-dev", "libxslt1-dev/html", "libxslt",
     ["html/libxslt-xslt.html", "EXSLT/index.html"]),
    ("handwritten", "libexpat1-dev", "libexpat1-dev/expat.html", "expat",
     ["reference.html"]),
    ("docbook-html", "valgrind", "valgrind/html", "valgrind",
     ["index.html", "manual-intro.html"]),
    ("gtk-doc", "libglib2.0-doc", "libglib2.0-doc/glib", "glib",
     ["index.html", "glib-Version-Information.html"]),
    ("gtk-doc", "libtasn1-doc", "libtasn1-doc/reference", "libtasn1",
     ["index.html", "ch01.html"]),
    ("doxygen", "libjson-c-doc", "libjson-c-dev/html", "json-c",
     ["index.html", "files.html", "annotated.html", "structjson__object__iterator.html"]),
    ("doxygen", "doxygen-doc", "doxygen/html/examples/manual/html", "doxygen-example",
     ["struct_car.html", "inherits.html"]),
    ("texinfo", "m4-doc", "m4", "m4", ["index.html", "Macro-Arguments.html"]),
    ("texinfo", "libffi-dev", "libffi-dev/html", "libffi", ["index.html", "Types.html"]),
    ("man2html", "bash-doc", "bash", "bash", ["bash.html"]),
    ("apache", "apache2-doc", "apache2-doc/manual", "manual", [
        "index.html", "en/index.html", "en/bind.html", "ko/index.html", "ko/bind.html",
        "ko/mpm.html", "de/index.html", "es/index.html", "ja/index.html", "fr/index.html"]),
    ("javadoc", "libjlha-java-doc-ja", "libjlha-java-doc-ja/api", "jlha", [
        "index.html", "overview-summary.html",
        "jp/gr/java_conf/dangan/util/lha/LhaChecksum.html"]),
    ("handwritten", "w3m", "w3m", "w3m", ["FAQ.html", "ja/MANUAL.html"]),
]
# Complete trees, for the end-to-end crawl (every internal link resolves inside them):
# groff's pic manual, and the Debian New Maintainers' Guide (XHTML with an XML declaration).
TREES = [("grohtml", "groff", "groff-base/html", "pic", "pic*.html"),
         ("docbook-xhtml", "maint-guide", "maint-guide/html", "maint-guide", "*.html")]


def version(package: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], check=True,
                          capture_output=True, text=True).stdout


def owner(path: Path) -> str:
    out = subprocess.run(["dpkg", "-S", os.path.realpath(path)], check=True,
                         capture_output=True, text=True).stdout
    return out.split(":")[0]


def copy(generator: str, package: str, folder: str, name: str, files: list[str]) -> list[str]:
    rows = []
    for rel in files:
        source = DOC / folder / rel
        if owner(source) != package:
            raise SystemExit(f"{source} is not from {package}")
        target = HERE / generator / name / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)  # follows symlinks: the bytes the package ships
        digest = hashlib.sha256(target.read_bytes()).hexdigest()[:16]
        rows.append(f"| `{target.relative_to(HERE)}` | {package} | {version(package)} | "
                    f"`{os.path.realpath(source)}` | {LICENCES[package]} | `{digest}` |")
    return rows


def main() -> None:
    rows = []
    for entry in PAGES:
        rows += copy(*entry)
    for generator, package, folder, name, pattern in TREES:
        files = sorted(p.name for p in (DOC / folder).glob(pattern))
        rows += copy(generator, package, folder, name, files)
    header = ["# Corpus sources", "",
              "Real pages from Debian 12 (bookworm) documentation packages (all in main, "
              "DFSG-free), copied byte for byte by `collect.py`; `sha256` is the first 16 hex "
              "digits of each file's SHA-256. `grohtml/pic/` (groff's pic manual, 24 pages) "
              "and `docbook-xhtml/maint-guide/` (11 pages) are complete trees: every internal "
              "link resolves inside them; the end-to-end test crawls both.", "",
              "| file | package | version | shipped as | licence | sha256 |",
              "| --- | --- | --- | --- | --- | --- |"]
    (HERE / "SOURCES.md").write_text("\n".join(header + rows) + "\n", encoding="utf-8")
    print(f"{len(rows)} files")


if __name__ == "__main__":
    main()
