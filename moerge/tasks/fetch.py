"""Fetch the Debian packages that hold the task data into a data directory.

Layout of a data directory:

    debs/<package>_<version>_all.deb      what `apt-get download` fetched
    root/<package>/...                    the package's files, one tree per package
    root/<package>/.moerge-package.json   written last: name, version and .deb file
    tasks/<task>.jsonl                    cached cleaned examples (see moerge.tasks.core)

Each package has its own tree so that a task can tell which package a file came
from (several fortune packages write into the same folder). A package whose marker
exists is never fetched again. Packages are extracted with `dpkg-deb -x` where it
exists, and otherwise by reading the .deb (an `ar` archive of tar files) directly,
so `--from-dir` also works on machines without dpkg.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from moerge.tasks.core import PACKAGE_MARKER, default_data_dir, installed_version

PACKAGES: tuple[str, ...] = (
    "fortunes",
    "fortunes-de",
    "fortunes-es",
    "fortunes-it",
    "fortunes-br",
    "fortunes-mario",
    "fortunes-pl",
    "fortunes-ru",
    "fortunes-cs",
    "fortunes-bg",
    "fortunes-eo",
    "fortunes-ga",
    "fortunes-zh",
    "wordnet-base",
    "dict-gcide",
    "dict-foldoc",
    "dict-jargon",
    "dict-devil",
)
_NOT_FOUND = ("Unable to locate package", "has no installation candidate", "Can't select")


class FetchError(Exception):
    """The packages cannot be fetched or extracted; the message says what to do instead."""


def fetch(
    data_dir: Path | None = None,
    packages: Sequence[str] | None = None,
    from_dir: Path | None = None,
    progress: bool = True,
) -> Path:
    """Download (or take from `from_dir`) and extract the packages; returns the data dir."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if isinstance(packages, str):
        packages = [packages]
    wanted = list(dict.fromkeys(packages if packages is not None else PACKAGES))
    try:
        return _fetch(data_dir, wanted, from_dir, progress)
    except OSError as exc:
        raise FetchError(f"{exc.filename or data_dir}: {exc.strerror or exc}") from exc


def _fetch(data_dir: Path, wanted: list[str], from_dir: Path | None, progress: bool) -> Path:
    todo = [pkg for pkg in wanted if installed_version(data_dir, pkg) is None]
    present = len(wanted) - len(todo)
    if present:
        _say(progress, f"{present} of {len(wanted)} packages already fetched in {data_dir}")
    if not todo:
        return data_dir
    if from_dir is not None:
        debs = _from_dir(Path(from_dir), todo)
    else:
        _say(progress, f"downloading {len(todo)} package(s) with apt-get into {data_dir / 'debs'}")
        debs = _download(data_dir, todo)
    for pkg in todo:
        version = extract(debs[pkg], data_dir / "root", pkg)
        _say(progress, f"{pkg} {version}: extracted from {debs[pkg].name}")
    return data_dir


def _say(progress: bool, line: str) -> None:
    if progress:
        print(f"moerge: {line}", file=sys.stderr, flush=True)


def _elsewhere(packages: Sequence[str]) -> str:
    return (
        f"on a machine with apt run `apt-get download {' '.join(packages)}`, copy the .deb "
        "files into a folder DIR here and run `moerge data fetch --from-dir DIR`"
    )


def _from_dir(folder: Path, packages: Sequence[str]) -> dict[str, Path]:
    """The .deb file of each package in a folder (`<package>_*.deb`, the last by name)."""
    if not folder.is_dir():
        raise FetchError(f"{folder} is not a folder")
    found = {pkg: sorted(folder.glob(f"{pkg}_*.deb")) for pkg in packages}
    missing = [pkg for pkg, files in found.items() if not files]
    if missing:
        raise FetchError(
            f"{folder} has no .deb file for {', '.join(missing)}; {_elsewhere(missing)}"
        )
    return {pkg: files[-1] for pkg, files in found.items()}


def _download(data_dir: Path, packages: Sequence[str]) -> dict[str, Path]:
    """`apt-get download` the packages into data_dir/debs."""
    if shutil.which("apt-get") is None:
        raise FetchError(f"apt-get is not available here; {_elsewhere(packages)}")
    debs = data_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["apt-get", "download", *packages], cwd=debs, capture_output=True, text=True, check=False
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("E:")]
    if any(marker in line for line in errors for marker in _NOT_FOUND):
        raise FetchError(
            f"apt-get cannot find some packages ({'; '.join(errors)}); the apt package lists "
            "are missing or stale: run `sudo apt-get update` once, then retry"
        )
    if done.returncode != 0:
        detail = "; ".join(errors or done.stderr.strip().splitlines()[-3:])
        raise FetchError(f"apt-get download failed ({detail}); or {_elsewhere(packages)}")
    found: dict[str, Path] = {}
    for pkg in packages:
        files = sorted(debs.glob(f"{pkg}_*.deb"), key=lambda p: p.stat().st_mtime)
        if not files:
            raise FetchError(f"apt-get download left no .deb file for {pkg} in {debs}")
        found[pkg] = files[-1]
    return found


def extract(deb: Path, root: Path, package: str) -> str:
    """Extract a .deb into root/<package> and mark it done; returns the package version."""
    fields = control_fields(deb)
    if fields.get("Package") != package:
        raise FetchError(f"{deb} holds package {fields.get('Package')!r}, not {package!r}")
    version = fields.get("Version", "")
    target = root / package
    partial = root / f".{package}.partial"
    for stale in (target, partial):
        if stale.exists():
            shutil.rmtree(stale)
    partial.mkdir(parents=True)
    if shutil.which("dpkg-deb"):
        _run(["dpkg-deb", "-x", str(deb), str(partial)], deb)
    else:
        extract_files(deb, partial)
    marker = {"package": package, "version": version, "deb": deb.name}
    (partial / PACKAGE_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
    partial.rename(target)
    return version


def control_fields(deb: Path) -> dict[str, str]:
    """The fields of a .deb's control file (Package, Version, ...)."""
    if shutil.which("dpkg-deb"):
        return parse_control(_run(["dpkg-deb", "--field", str(deb)], deb))
    return read_control(deb)


def read_control(deb: Path) -> dict[str, str]:
    """The control fields of a .deb, read without dpkg."""
    with _tar_member(deb, "control.tar") as tar:
        try:
            member = tar.extractfile("./control")
        except KeyError:
            member = None
        if member is None:
            raise FetchError(f"{deb} has no control file")
        return parse_control(member.read().decode("utf-8", errors="replace"))


def parse_control(text: str) -> dict[str, str]:
    """`Field: value` lines of a Debian control file (continuation lines are skipped)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line[:1].isspace():
            fields[key.strip()] = value.strip()
    return fields


def _run(command: list[str], deb: Path) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FetchError(f"{command[0]} cannot read {deb}: {done.stderr.strip()}")
    return done.stdout


def extract_files(deb: Path, dest: Path) -> None:
    """Write a .deb's regular files and folders under dest (links and devices are skipped)."""
    with _tar_member(deb, "data.tar") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if any(part == ".." for part in parts) or member.name.startswith("/"):
                raise FetchError(f"{deb}: unsafe path {member.name!r}")
            path = dest.joinpath(*[part for part in parts if part != "."])
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
            elif member.isfile() or member.islnk():
                content = tar.extractfile(member)
                if content is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content.read())


def _tar_member(deb: Path, prefix: str) -> tarfile.TarFile:
    """Open the tar member of a .deb whose name starts with prefix (e.g. data.tar.xz)."""
    for name, blob in _ar_members(deb):
        if name.startswith(prefix):
            if name.endswith(".zst"):
                raise FetchError(
                    f"{deb}: {name} is zstd-compressed, which needs dpkg-deb; install dpkg "
                    "or fetch the Debian (not Ubuntu) .deb files"
                )
            try:
                return tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")
            except tarfile.TarError as exc:
                raise FetchError(f"{deb}: cannot read {name}: {exc}") from exc
    raise FetchError(f"{deb} has no {prefix}.* member; is it a .deb file?")


def _ar_members(deb: Path) -> list[tuple[str, bytes]]:
    """The (name, content) members of an `ar` archive, the container format of a .deb."""
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise FetchError(f"{deb} is not a .deb file (no ar header)")
    members, pos = [], 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode("ascii", errors="replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as exc:
            raise FetchError(f"{deb}: damaged ar header at byte {pos}") from exc
        members.append((name, data[pos + 60 : pos + 60 + size]))
        pos += 60 + size + (size % 2)
    return members
