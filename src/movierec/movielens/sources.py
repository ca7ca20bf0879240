"""Where the MovieLens archives come from: official URLs with their checksums, a verified download
(a damaged or cut-off archive is never kept), unzipping, and the folder an ingest reads."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from movierec.errors import DataError

GROUPLENS = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class DatasetSource:
    """An official MovieLens archive: its URL, checksum ("md5:..." or "sha256:...") and folder."""

    name: str
    url: str
    checksum: str
    folder: str
    redistributable: bool = False


# Checksums: the publisher's `<zip>.md5` files, as quoted by public code (sources in
# docs/datasets.md). ml-latest-small's .md5 was not found in any public copy; it changes with
# each release, so it is pinned by the SHA-256 of the 2018-09 release instead.
DATASETS: dict[str, DatasetSource] = {
    s.name: s
    for s in [
        DatasetSource("ml-100k", f"{GROUPLENS}/ml-100k.zip",
                      "md5:0e33842e24a9c977be4e0107933c0723", "ml-100k"),
        DatasetSource("ml-1m", f"{GROUPLENS}/ml-1m.zip",
                      "md5:c4d9eecfca2ab87c1945afe126590906", "ml-1m"),
        DatasetSource("ml-10m", f"{GROUPLENS}/ml-10m.zip",
                      "md5:ce571fd55effeba0271552578f2648bd", "ml-10M100K"),
        DatasetSource("ml-20m", f"{GROUPLENS}/ml-20m.zip",
                      "md5:cd245b17a1ae2cc31bb14903e1204af3", "ml-20m"),
        DatasetSource("ml-25m", f"{GROUPLENS}/ml-25m.zip",
                      "md5:6b51fb2759a8657d3bfcbfc42b592ada", "ml-25m"),
        DatasetSource("ml-32m", f"{GROUPLENS}/ml-32m.zip",
                      "md5:d472be332d4daa821edc399621853b57", "ml-32m"),
        DatasetSource(
            "ml-latest-small",
            f"{GROUPLENS}/ml-latest-small.zip",
            "sha256:696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            "ml-latest-small",
            redistributable=True,
        ),
    ]
}


# ---------------------------------------------------------------------------------------------
# Download, checksum, unzip


def parse_checksum(checksum: str) -> tuple[str, str]:
    """'md5:HEX' or 'sha256:HEX' (a bare 32-hex string is md5) -> (algorithm, lowercase hex)."""
    algorithm, _, digest = checksum.strip().rpartition(":")
    algorithm = (algorithm or "md5").lower()
    digest = digest.lower()
    width = {"md5": 32, "sha256": 64}.get(algorithm)
    if width is None or len(digest) != width or any(c not in "0123456789abcdef" for c in digest):
        raise DataError(f"invalid checksum {checksum!r}: expected md5:<32 hex> or sha256:<64 hex>")
    return algorithm, digest


def checksum_of(path: Path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str, dest: Path, checksum: str, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Download url to dest (atomically), verifying its checksum. A verified cache is reused."""
    from tqdm import tqdm

    algorithm, expected = parse_checksum(checksum)
    if dest.exists():
        if checksum_of(dest, algorithm) == expected:
            return dest
        dest.unlink()  # a stale or corrupted cache entry: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError) as exc:
                raise DataError(
                    f"cannot download {url}: {getattr(exc, 'reason', exc)}; "
                    "set MOVIELENS_DIR to a local copy of the dataset instead"
                ) from None
            total = int(response.headers.get("Content-Length") or 0) or None
            with response, tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                received = 0
                try:
                    while block := response.read(1 << 20):
                        out.write(block)
                        received += len(block)
                        bar.update(len(block))
                except (http.client.HTTPException, OSError):
                    pass  # reported just below, as a short download
                if total is not None and received < total:
                    raise DataError(
                        f"cannot download {url}: the connection was cut off after {received} of "
                        f"{total} bytes; nothing was written: try again, or set MOVIELENS_DIR to "
                        "a local copy"
                    )
        actual = checksum_of(tmp, algorithm)
        if actual != expected:
            raise DataError(
                f"{url}: checksum mismatch ({algorithm} {actual}, expected {expected}); "
                "the download is corrupted or truncated, nothing was written"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def unpack(archive: Path, target: Path) -> None:
    """Unzip into target atomically: a partial extraction is never mistaken for a dataset."""
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(staging)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{archive}: not a valid zip archive ({exc})") from None
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch(
    name: str,
    cache: Path,
    url: str | None = None,
    md5: str | None = None,
    progress: bool = True,
) -> Path:
    """Return the folder holding dataset `name`'s files, downloading and verifying it if needed."""
    source = dataset_source(name)
    if url and not md5:
        raise DataError("MOVIELENS_URL needs MOVIELENS_MD5: a download is always checksum-verified")
    url = url or source.url
    checksum = ":".join(parse_checksum(md5 if md5 else source.checksum))
    cache = Path(cache)
    extracted = cache / name
    marker = extracted / ".checksum"
    folder = extracted / source.folder
    if marker.exists() and marker.read_text().strip() == checksum and folder.is_dir():
        return folder
    archive = download(url, cache / f"{name}.zip", checksum, progress=progress)
    cache.mkdir(parents=True, exist_ok=True)
    unpack(archive, extracted)
    if not folder.is_dir():
        raise DataError(f"{archive}: expected a folder {source.folder}/ inside the archive")
    marker.write_text(checksum + "\n")
    return folder


def dataset_source(name: str) -> DatasetSource:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(DATASETS)
        raise DataError(f"unknown dataset {name!r}; choose one of: {known}") from None


# ---------------------------------------------------------------------------------------------
# Parsers


def dataset_folder(settings, name: str | None = None, data_dir: Path | str | None = None,
                   progress: bool = True) -> Path:
    """The folder holding dataset `name`'s files: `data_dir` (or MOVIELENS_DIR) when given, else
    the checksum-verified download in MOVIELENS_CACHE (fetched once, then reused)."""
    name = name or settings.movielens_dataset
    folder = data_dir or settings.movielens_dir
    if folder is None:
        return fetch(name, settings.movielens_cache, settings.movielens_url,
                     settings.movielens_md5, progress=progress)
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such dataset folder (check MOVIELENS_DIR or --data)")
    return folder
