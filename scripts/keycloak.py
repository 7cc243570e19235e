"""Install a pinned Keycloak once, built for tests, into a cache outside the repo.

The identity-provider test tier (tests/idp/) runs a real Keycloak. Its server distribution
(``org.keycloak:keycloak-quarkus-dist``, a zip) comes from Maven Central through Maven's own
client (``mvn dependency:copy``, checksum-checked by Maven), and its sha256 is checked here
against the pinned value. Keycloak 26 needs Java 21 or later: the first JDK found among
``$REMIT_KEYCLOAK_JAVA_HOME``, ``$JAVA_HOME`` and ``/usr/lib/jvm/*`` whose ``release`` file
says 21+ is used. The distribution is then built once (``kc.sh build``) for what the tests
need (a file database, standard token exchange), so each test session starts it with
``start --optimized``. With ``--realm`` a realm file is also imported once into a database
template (``kc.sh import``), which sessions copy instead of creating schema and realms:

    python scripts/keycloak.py            # install if missing; print the Keycloak home
    python scripts/keycloak.py --check    # exit 1 unless it is installed
    python scripts/keycloak.py --java     # print the JDK home Keycloak runs on
    python scripts/keycloak.py --realm tests/idp/realm-remit.json   # also a realm template

The cache is ``$REMIT_KEYCLOAK_CACHE`` or ``~/.cache/remit/keycloak``, one folder per
version with ``keycloak-<version>/`` (the built server), ``java-home`` (the JDK it was built
with), ``build.json`` (how long download and build took) and ``realm-<name>-<sha256>/``
templates. A lock file makes two worktrees
asking at once install once.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

VERSION = "26.7.3"
ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{VERSION}:zip"
SHA256 = "27a6535553c3cdcd083872ba40629efafb3475e3b758e0c6f691395561dd0f1f"
MIN_JAVA = 21
BUILD_OPTIONS = ("--db=dev-file", "--features=token-exchange-standard")
#: The audience in a realm template, replaced by each test session (see tests/idp/keycloak.py).
AUDIENCE_PLACEHOLDER = "urn:remit:audience-unset"


def cache_root() -> Path:
    explicit = os.environ.get("REMIT_KEYCLOAK_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "remit" / "keycloak"


def version_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / VERSION


def home(root: Path | None = None) -> Path:
    """The built Keycloak's home (``bin/kc.sh``, ``lib/``, ``conf/``...)."""
    return version_dir(root) / f"keycloak-{VERSION}"


def present(root: Path | None = None) -> bool:
    """Whether Keycloak is installed and built with today's ``BUILD_OPTIONS``."""
    record = version_dir(root) / "build.json"
    if not record.is_file() or not (home(root) / "bin" / "kc.sh").is_file():
        return False
    try:
        options = json.loads(record.read_text()).get("buildOptions")
    except ValueError:
        return False
    return options == list(BUILD_OPTIONS)


def java_home(root: Path | None = None) -> Path:
    """The JDK the installed Keycloak was built with (``SystemExit`` if not installed)."""
    recorded = version_dir(root) / "java-home"
    if not recorded.is_file():
        raise SystemExit("keycloak: not installed (run python scripts/keycloak.py)")
    return Path(recorded.read_text().strip())


def _java_major(candidate: Path) -> int | None:
    release = candidate / "release"
    if not (candidate / "bin" / "java").is_file() or not release.is_file():
        return None
    for line in release.read_text(errors="replace").splitlines():
        if line.startswith("JAVA_VERSION="):
            text = line.partition("=")[2].strip().strip('"')
            head = text.split(".")[0]
            return int(head) if head.isdigit() else None
    return None


def find_java() -> Path:
    """A JDK of at least ``MIN_JAVA``: the configured ones first, then ``/usr/lib/jvm``."""
    candidates = [os.environ.get("REMIT_KEYCLOAK_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    jvm = Path("/usr/lib/jvm")
    found = [str(p) for p in sorted(jvm.iterdir(), reverse=True)] if jvm.is_dir() else []
    seen: list[str] = []
    for text in [c for c in candidates if c] + found:
        path = Path(text).resolve()
        major = _java_major(path)
        seen.append(f"{text} ({major or 'not a JDK'})")
        if major is not None and major >= MIN_JAVA:
            return path
    raise SystemExit(
        f"keycloak: Keycloak {VERSION} needs Java {MIN_JAVA}+; none found among: "
        + ", ".join(seen)
        + " (set REMIT_KEYCLOAK_JAVA_HOME)"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(into: Path) -> Path:
    """The distribution zip, copied by Maven into ``into`` and sha256-checked."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SystemExit("keycloak: Maven (mvn) is needed to fetch the distribution")
    argv = [mvn, "-B", "-q", "-C", "dependency:copy", f"-Dartifact={ARTIFACT}"]
    argv.append(f"-DoutputDirectory={into}")
    print("keycloak: $", " ".join(argv), flush=True)
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"keycloak: mvn dependency:copy failed with exit {done.returncode}")
    archive = into / f"keycloak-quarkus-dist-{VERSION}.zip"
    if not archive.is_file():
        raise SystemExit(f"keycloak: Maven reported success but {archive} is missing")
    actual = _sha256(archive)
    if actual != SHA256:
        raise SystemExit(f"keycloak: {archive} has sha256 {actual}, expected {SHA256}")
    return archive


def install(root: Path | None = None) -> Path:
    """Download, unpack and build Keycloak unless present; return its home."""
    folder = version_dir(root)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f".{VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if present(root):
            return home(root)
        java = find_java()
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            started = time.monotonic()
            archive = download(Path(scratch))
            fetched = time.monotonic()
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(scratch)
            unpacked = Path(scratch) / f"keycloak-{VERSION}"
            for script in (unpacked / "bin").glob("*.sh"):
                script.chmod(0o755)
            env = {**os.environ, "JAVA_HOME": str(java)}
            argv = ["nice", "-n", "10", str(unpacked / "bin" / "kc.sh"), "build", *BUILD_OPTIONS]
            print("keycloak: $", " ".join(argv[3:]), flush=True)
            done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.stderr.write(done.stdout[-6000:] + done.stderr[-4000:])
                raise SystemExit(f"keycloak: kc.sh build failed with exit {done.returncode}")
            unpacked.rename(home(root))
        (folder / "java-home").write_text(f"{java}\n")
        built = time.monotonic()
        record = {
            "version": VERSION,
            "java": str(java),
            "buildOptions": list(BUILD_OPTIONS),
            "downloadSeconds": round(fetched - started, 1),
            "buildSeconds": round(built - fetched, 1),
        }
        (folder / "build.json").write_text(json.dumps(record, indent=2) + "\n")
        return home(root)


def realm_template(realm: Path, root: Path | None = None) -> Path:
    """Where the database with ``realm`` imported is kept (named by the file's sha256)."""
    digest = _sha256(realm)[:16]
    return version_dir(root) / f"realm-{realm.stem}-{digest}"


def prepare_realm(realm: Path, root: Path | None = None) -> Path:
    """A database (H2 file) with the schema, the master realm and ``realm`` imported, made once
    with ``kc.sh import``; a test session copies it and starts in a fraction of the time a
    fresh database takes (schema, master realm and import are most of a start).

    ``${REMIT_IDP_AUDIENCE}`` in the realm file becomes ``AUDIENCE_PLACEHOLDER``.
    Returns the folder to pass (a copy of) as the ``kc.db-url-path`` system property.
    """
    realm = realm.resolve()
    target = realm_template(realm, root)
    with (version_dir(root).parent / f".{VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "data").is_dir():
            return target
        if not present(root):
            raise SystemExit("keycloak: not installed (run python scripts/keycloak.py)")
        scratch = Path(tempfile.mkdtemp(dir=version_dir(root), prefix=".realm-"))
        try:
            env = {
                **os.environ,
                "JAVA_HOME": str(java_home(root)),
                "REMIT_IDP_AUDIENCE": AUDIENCE_PLACEHOLDER,
                # Where the file database goes (the property behind Keycloak's default URL).
                "JAVA_OPTS_APPEND": f"-Dkc.db-url-path={scratch}",
            }
            kc = str(home(root) / "bin" / "kc.sh")
            argv = ["nice", "-n", "10", kc, "import", "--optimized", f"--file={realm}"]
            argv += ["--log-level=warn"]
            print("keycloak: $", " ".join(argv[3:]), flush=True)
            started = time.monotonic()
            done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True)
            if done.returncode != 0 or not (scratch / "data").is_dir():
                sys.stderr.write(done.stdout[-6000:] + done.stderr[-4000:])
                raise SystemExit(f"keycloak: importing {realm} failed (exit {done.returncode})")
            (scratch / "import.json").write_text(
                json.dumps({"realm": str(realm), "seconds": round(time.monotonic() - started, 1)})
                + "\n"
            )
            scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 unless installed")
    parser.add_argument("--java", action="store_true", help="print the JDK Keycloak runs on")
    parser.add_argument("--realm", type=Path, help="also import this realm file into a template")
    args = parser.parse_args()
    if args.check:
        raise SystemExit(0 if present() else 1)
    if args.java:
        print(java_home())
        return
    print(install())
    if args.realm is not None:
        print(prepare_realm(args.realm))


if __name__ == "__main__":
    main()
