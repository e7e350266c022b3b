"""Hugging Face Hub: fetch an MR.Q export by repo id (`resolve_source`) and publish one (`push_folder`).

An export folder is one Hub repo: config.json, model.safetensors, actor.onnx, README.md (model card),
results.json and optionally replay.mp4. Downloads go through the standard HF cache, so HF_HOME / HF_HUB_CACHE,
HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE=1 behave as for any other Hub library. `huggingface_hub` is imported
inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from mrq_agents.errors import CheckpointError, one_line
from mrq_agents.files import (
    CARD_FILE,
    CONFIG_FILE,
    CURVE_FILE,
    METRICS_FILE,
    MODEL_FILE,
    ONNX_FILE,
    RESULTS_FILE,
    VIDEO_FILE,
)

# What `resolve_source` fetches: enough to load, evaluate, describe and fine-tune an agent (metrics.csv tells the
# reward scale its critics were trained at); videos and curves stay on the Hub.
DOWNLOAD_PATTERNS = [CONFIG_FILE, MODEL_FILE, ONNX_FILE, CARD_FILE, RESULTS_FILE, METRICS_FILE]
# What `push_folder` uploads. A run folder's checkpoint.safetensors (optimizer + replay state, possibly GBs) and
# TensorBoard event files are never part of an export.
UPLOAD_PATTERNS = [*DOWNLOAD_PATTERNS, VIDEO_FILE, CURVE_FILE]
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # "org/name"; huggingface_hub validates the details


def _http_problem(err) -> str:
    """'HTTP 401: <the Hub's reason>' for a huggingface_hub HfHubHTTPError, one line."""
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    reason = getattr(err, "server_message", None) or str(err).splitlines()[0]
    return one_line(f"HTTP {status}: {reason}" if status else reason)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection refused / DNS / timeout errors of the HTTP library huggingface_hub uses."""
    try:
        from httpx2 import TransportError  # huggingface_hub >= 2
    except ImportError:
        return (ConnectionError,)  # older, requests-based huggingface_hub: its errors are OSErrors
    return (ConnectionError, TransportError)


def is_offline(local_files_only: bool | None = None) -> bool:
    """`local_files_only`, or when None the HF_HUB_OFFLINE setting (read now, so a late os.environ change counts)."""
    if local_files_only is not None:
        return local_files_only
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def resolve_source(
    source: str | os.PathLike,
    revision: str | None = None,
    local_files_only: bool | None = None,
    cache_dir: str | None = None,
) -> Path:
    """A local folder, or the local snapshot folder of Hub repo `source` ("org/name") at `revision`.

    A local folder is returned as is. A repo id is downloaded into the HF cache (config.json, model.safetensors,
    actor.onnx, README.md, results.json, metrics.csv; not videos or curves); with `local_files_only` or
    HF_HUB_OFFLINE=1 only the cache is used.
    Raises a one-line CheckpointError for a missing folder, an unknown or uncached repo, a bad revision, or a repo
    that is not an MR.Q export.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(
            f"{path} is a file, not a model folder; pass the folder that holds {CONFIG_FILE} and {MODEL_FILE}"
        )
    if isinstance(source, os.PathLike) or not _REPO_ID.fullmatch(str(source)):
        raise CheckpointError(f"no folder at {source}; pass a run or export folder, or a Hub repo id like org/name")
    return _download(str(source), revision, local_files_only, cache_dir)


def _download(repo_id: str, revision: str | None, local_files_only: bool | None, cache_dir: str | None) -> Path:
    from huggingface_hub import snapshot_download

    with _download_errors(repo_id, revision, is_offline(local_files_only)):
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=DOWNLOAD_PATTERNS,
                local_files_only=is_offline(local_files_only),
                cache_dir=cache_dir,
            )
        )
    at = f"{repo_id}@{revision}" if revision else repo_id
    for name in (CONFIG_FILE, MODEL_FILE):
        if not (folder / name).is_file():
            raise CheckpointError(
                f"{at} is not an MR.Q export: no {name}; check the repo id, or push an export "
                "folder to it with push_folder"
            )
    return folder


@contextlib.contextmanager
def _download_errors(repo_id: str, revision: str | None, offline: bool) -> Iterator[None]:
    """huggingface_hub's download errors as one-line CheckpointErrors that name the fix."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f"{repo_id}@{revision}" if revision else repo_id
    not_found = (
        f"{at} not found on the Hub or in the local cache"
        f"{' (offline: HF_HUB_OFFLINE=1 or local_files_only)' if offline else ''}; "
        "check the id and revision (or the path, if you meant a local folder), or download it once online"
    )
    try:
        yield
    except RevisionNotFoundError:
        raise CheckpointError(
            f"revision {revision!r} not found in Hub repo {repo_id}; check the branch, tag or commit sha"
        ) from None
    except (RepositoryNotFoundError, EntryNotFoundError, LocalEntryNotFoundError):  # incl. gated/private repos
        raise CheckpointError(not_found) from None
    except HFValidationError as e:
        raise CheckpointError(
            f"{at} is not a valid Hub repo id or revision ({one_line(e)}); "
            "use org/name and an existing branch, tag or commit sha"
        ) from None
    except HfHubHTTPError as e:
        raise CheckpointError(
            f"could not download {at} from the Hub ({_http_problem(e)}); check your token "
            "(HF_TOKEN) and connection, or retry with HF_HUB_OFFLINE=1 if it is cached"
        ) from None
    except _transport_errors() as e:  # the connection dropped mid-download
        raise CheckpointError(
            f"could not download {at} from the Hub ({one_line(e)}); check your connection and retry"
        ) from None


def download_files(
    repo_id: str,
    names: list[str],
    cache_dir: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Download `names` of Hub repo `repo_id` (main) into the HF cache, one after the other, and return the
    snapshot folder. Files already cached are not fetched again; a download cut half-way resumes where it stopped.
    `on_bytes(n)` is called as bytes arrive (huggingface_hub's own progress bars stay off)."""
    from huggingface_hub import hf_hub_download
    from tqdm.auto import tqdm

    class _Counter(tqdm):  # huggingface_hub reports a download's progress through a tqdm class
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "disable": True})

        def update(self, n: float | None = 1) -> bool | None:
            if on_bytes is not None and n:
                on_bytes(int(n))
            return super().update(n)

    folders = set()
    with _download_errors(repo_id, None, offline=False):
        for name in names:
            path = hf_hub_download(repo_id, name, cache_dir=cache_dir, tqdm_class=_Counter)
            folders.add(Path(path).parent)
    if len(folders) != 1:  # main moved while the files came down
        raise CheckpointError(f"the Hub repo {repo_id} changed during the download; retry")
    return folders.pop()


def _check_export(folder: Path) -> None:
    if not folder.is_dir():
        raise CheckpointError(f"no folder at {folder}; pass an export (or run) folder to push")
    missing = [name for name in (CONFIG_FILE, MODEL_FILE) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{folder} is not an MR.Q export: no {' or '.join(missing)}; push a folder written "
            "by an MR.Q export or `mrq train` run"
        )
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(
            f"{folder / CONFIG_FILE} is not valid JSON ({one_line(e)}); re-export the agent"
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("format_version"), int):
        raise CheckpointError(
            f"{folder / CONFIG_FILE} is not an MR.Q model config (no format_version); re-export the agent"
        )


def is_export_folder(folder: str | os.PathLike) -> bool:
    """Whether `folder` is an export folder (it has a model card and results), as opposed to a run folder."""
    return (Path(folder) / CARD_FILE).exists() and (Path(folder) / RESULTS_FILE).exists()


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    commit_message: str = "Upload MR.Q agent",
    token: str | None = None,
) -> str:
    """Create Hub repo `repo_id` if needed and upload the export files of `folder` to it; returns the commit URL.

    Only config.json, model.safetensors, actor.onnx, README.md, results.json, replay.mp4, learning_curve.png and
    metrics.csv are uploaded (never checkpoint.safetensors or TensorBoard files). `token` defaults to HF_TOKEN / the
    saved login. Raises a one-line CheckpointError for a folder that is not an export, a bad repo id, or a Hub error
    (authentication, permissions, network).
    """
    folder = Path(folder).expanduser()
    _check_export(folder)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=folder, allow_patterns=UPLOAD_PATTERNS, commit_message=commit_message
        )
    except HFValidationError as e:
        raise CheckpointError(f"{repo_id!r} is not a valid Hub repo id ({one_line(e)}); use org/name") from None
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        fix = (
            "check your token (HF_TOKEN or `hf auth login`) and that it may write to this namespace"
            if status in (401, 403)
            else "check the repo id and retry"
        )
        raise CheckpointError(f"push of {folder} to {repo_id} failed ({_http_problem(e)}); {fix}") from None
    except OfflineModeIsEnabled:
        raise CheckpointError(
            f"push of {folder} to {repo_id} needs the network but HF_HUB_OFFLINE=1 is set; "
            "unset HF_HUB_OFFLINE and retry"
        ) from None
    except _transport_errors() as e:
        raise CheckpointError(
            f"push of {folder} to {repo_id} could not reach the Hub at {api.endpoint} "
            f"({one_line(e)}); check your connection and HF_ENDPOINT, then retry"
        ) from None
    except ValueError as e:  # invalid README.md metadata, rejected by the Hub before the upload
        raise CheckpointError(
            f"push of {folder} to {repo_id} refused: {one_line(e)}; fix the model card (README.md front matter)"
        ) from None
    return info.commit_url
