"""Pickle-free persistence: atomic writes, JSON files, safetensors, and nested state <-> (tensors, JSON skeleton).

Every file this package writes or reads is either JSON or safetensors. Optimizer states, RNG states and other
nested Python structures are stored by `flatten_state`, which splits them into a flat dict of tensors (for
safetensors) and a JSON skeleton that says how to put them back together (`unflatten_state`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
from safetensors import safe_open

from mrq_agents.errors import CheckpointError, one_line

if TYPE_CHECKING:
    import torch

_META_KEY = "mrq"  # safetensors header metadata key holding our JSON metadata string
_DIGEST_FIELD = "tensors_sha256"  # field of that JSON holding tensor_digest() of the file's tensors
_DIGEST_KEY = "mrq.sha256"  # where files written before 2026-11-26 hold it: a second header key. safetensors writes
# the header's keys in no fixed order, so two keys made the same tensors give files with different bytes.


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str = ".tmp") -> None:
    """Call `write(tmp_path)` on a temp file next to `path` (`.<name>.<random><suffix>`), fsync it, then os.replace
    it over `path`.

    If anything fails (a full disk, a file-size limit), `path` keeps its old content and the temp file is removed;
    an OSError names `path`, not the temp file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the usual permissions
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None and err.filename in (None, tmp):
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise


@contextlib.contextmanager
def staged_files(folder: str | os.PathLike, last: str) -> Iterator[Path]:
    """Write a set of files into `folder` so that a failure part-way leaves `folder` as it was.

    Yields a hidden staging folder inside `folder`; when the block ends without error, each staged file is moved
    over its namesake with os.replace (renames: no disk space needed), `last` after all the others, so a reader
    that checks the others against `last` never takes a half-written set for a whole one. On any error the
    staging folder is removed and `folder`'s files are untouched.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    try:
        yield stage
        for name in sorted((p.name for p in stage.iterdir() if p.is_file()), key=lambda n: (n == last, n)):
            os.replace(stage / name, folder / name)
    except OSError as err:  # name the file the user asked for, not its staged copy
        staged = Path(err.filename) if err.filename else None
        if err.errno is not None and staged is not None and staged.parent == stage:
            raise OSError(err.errno, err.strerror, str(folder / staged.name)) from None
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one, never a part."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write `obj` as indented JSON (keys in insertion order) with a trailing newline."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))


def read_json(path: str | os.PathLike, what: str) -> dict:
    """Read a JSON object; a missing or malformed file raises a one-line CheckpointError naming `what`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found at {path}; check the path (is it the right run or model folder?)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(
            f"{what} at {path} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
            "restore it from a good copy or re-create it"
        ) from None
    except (UnicodeDecodeError, OSError) as e:
        raise CheckpointError(
            f"{what} at {path} is not valid JSON ({one_line(e)}); restore it from a good copy or re-create it"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{what} at {path} is not valid JSON for this file (expected an object, got "
            f"{type(obj).__name__}); restore it from a good copy or re-create it"
        )
    return obj


def _storable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors that own their storage (safetensors refuses shared or strided memory)."""
    import torch  # here, not at the top: the JSON helpers above serve the torch-free ONNX backend

    out, seen = {}, set()
    for name, t in tensors.items():
        t = t.detach().cpu()
        storage = t.untyped_storage()
        if (
            not t.is_contiguous()
            or t.storage_offset() != 0
            or storage.data_ptr() in seen
            or storage.nbytes() != t.numel() * t.element_size()
        ):
            t = t.clone(memory_format=torch.contiguous_format)
        if t.numel():
            seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Atomically write a safetensors file; `metadata` (JSON-serialisable) and the tensors' sha256 (checked by
    load_tensors) go into its header as one JSON string, so the same tensors and metadata give the same bytes."""
    from safetensors.torch import save_file

    tensors = _storable(tensors)
    if metadata is not None and _DIGEST_FIELD in metadata:
        raise ValueError(f"metadata may not hold the reserved field {_DIGEST_FIELD!r}")
    header = {_META_KEY: json.dumps({**(metadata or {}), _DIGEST_FIELD: tensor_digest(tensors)}, sort_keys=True)}

    def write(tmp: str) -> None:
        try:
            save_file(tensors, tmp, metadata=header)
        except Exception as err:  # safetensors reports a failed write (a full disk) as its own error type
            raise _os_error(err, tmp) from None

    atomic_write(path, write)


def _os_error(err: Exception, path: str) -> Exception:
    """The OSError inside a safetensors error ("I/O error: No space left on device (os error 28)"), or `err`."""
    found = re.search(r"\(os error (\d+)\)", str(err))
    if isinstance(err, OSError) or found is None:
        return err
    code = int(found.group(1))
    return OSError(code, os.strerror(code), path)


def _parse_header(header: dict[str, str]) -> tuple[dict, str | None]:
    """(our metadata, the tensors' recorded sha256 or None) from a safetensors header of either layout."""
    metadata = json.loads(header[_META_KEY]) if _META_KEY in header else {}
    return metadata, metadata.pop(_DIGEST_FIELD, None) or header.get(_DIGEST_KEY)


def load_tensors(
    path: str | os.PathLike, device: str | torch.device = "cpu", what: str = "weights file"
) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a safetensors file -> (tensors on `device`, metadata dict or {}); bad files raise CheckpointError.

    Files written by save_tensors carry their tensors' sha256: changed tensor bytes are an error too.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found at {path}; check the path (is it the right run or model folder?)")
    try:
        with safe_open(str(path), framework="pt", device=str(torch.device(device))) as f:
            header = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        metadata, digest = _parse_header(header)
    except Exception as e:  # safetensors raises its own error types (and OSError/ValueError) for bad files
        raise CheckpointError(
            f"{what} at {path} is corrupt or truncated ({one_line(e)}); restore it from a good copy or re-create it"
        ) from None
    if digest is not None and tensor_digest(tensors) != digest:
        raise CheckpointError(
            f"{what} at {path} is corrupt: its tensors do not match the sha256 in its header; "
            "restore it from a good copy or re-create it"
        )
    return tensors, metadata


def tensor_locations(path: str | os.PathLike) -> dict[str, tuple[str, list[int], int, int]]:
    """Where each tensor of a safetensors file lies: name -> (dtype, shape, first byte, the byte after its last),
    counted from the start of the file (its 8-byte header length and JSON header come first)."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    data = 8 + size
    return {
        name: (info["dtype"], info["shape"], data + info["data_offsets"][0], data + info["data_offsets"][1])
        for name, info in header.items()
        if name != "__metadata__"
    }


def read_metadata(path: str | os.PathLike, what: str = "weights file") -> dict:
    """The JSON metadata of a safetensors file without reading its tensors ({} when it has none)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found at {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:  # the header only: no torch needed
            header = f.metadata() or {}
        return _parse_header(header)[0]
    except Exception as e:  # safetensors raises its own error types for bad files
        raise CheckpointError(f"{what} at {path} is corrupt or truncated ({one_line(e)})") from None


# ---------------------------------------------------------------------------------------------------------------
# Nested state <-> (flat tensors, JSON skeleton)
#
# Skeleton encoding: None, bool, str, int (any size) and finite floats are themselves; a list is a JSON list;
# everything else is a one-key tagged object, so no user data can be mistaken for a tag:
#   {"__dict__": [[key, value], ...]}   keys str or int, order kept
#   {"__tuple__": [...]}
#   {"__float__": "inf" | "-inf" | "nan"}
#   {"__tensor__": name}                tensor stored under `name`
#   {"__ndarray__": name, "dtype": "<f8", "shape": [...], "scalar": false}   bytes stored as a uint8 tensor
# ---------------------------------------------------------------------------------------------------------------


def flatten_state(tree: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state into (tensors keyed by path like "opt/state/3/exp_avg", JSON-serialisable skeleton)."""
    import torch

    tensors: dict[str, torch.Tensor] = {}

    def store(name: str, t: torch.Tensor) -> str:
        if name in tensors:
            raise ValueError(f"two tensors in the state map to the same name {name!r}; rename one of the keys")
        tensors[name] = t
        return name

    def walk(x: Any, path: str) -> Any:
        join = (lambda k: f"{path}/{k}") if path else str
        if isinstance(x, (np.ndarray, np.generic)):  # before float/int: np.float64 is a float
            arr = np.asarray(x)
            if arr.dtype.hasobject:
                raise TypeError(f"cannot store a numpy object array at {path!r}; convert it to a numeric array")
            raw = torch.from_numpy(np.frombuffer(np.ascontiguousarray(arr).tobytes(), dtype=np.uint8).copy())
            return {
                "__ndarray__": store(path or "array", raw),
                "dtype": arr.dtype.str,
                "shape": list(arr.shape),
                "scalar": isinstance(x, np.generic),
            }
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            return float(x) if math.isfinite(x) else {"__float__": repr(float(x))}
        if isinstance(x, torch.Tensor):
            return {"__tensor__": store(path or "tensor", x)}
        if isinstance(x, dict):
            items = []
            for k, v in x.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise TypeError(f"cannot store dict key {k!r} at {path!r}: keys must be str or int")
                items.append([k, walk(v, join(k))])
            return {"__dict__": items}
        if isinstance(x, tuple):
            return {"__tuple__": [walk(v, join(i)) for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [walk(v, join(i)) for i, v in enumerate(x)]
        raise TypeError(
            f"cannot store a {type(x).__name__} at {path!r}; use tensors, arrays, numbers, "
            "str, None, dicts, lists or tuples"
        )

    return tensors, walk(tree, prefix)


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Exact inverse of `flatten_state` (also after the skeleton went through json.dumps/json.loads)."""

    def get(name: str) -> torch.Tensor:
        if name not in tensors:
            raise CheckpointError(
                f"checkpoint is missing tensor {name!r} named by its state layout; "
                "the file is incomplete or from another version: re-create it"
            )
        return tensors[name]

    def walk(x: Any) -> Any:
        if isinstance(x, list):
            return [walk(v) for v in x]
        if not isinstance(x, dict):
            return x
        if "__dict__" in x:
            return {k: walk(v) for k, v in x["__dict__"]}
        if "__tuple__" in x:
            return tuple(walk(v) for v in x["__tuple__"])
        if "__float__" in x:
            return float(x["__float__"])
        if "__tensor__" in x:
            return get(x["__tensor__"])
        if "__ndarray__" in x:
            raw = get(x["__ndarray__"]).cpu().numpy().tobytes()
            arr = np.frombuffer(raw, dtype=np.dtype(x["dtype"])).reshape(x["shape"]).copy()
            return arr[()] if x["scalar"] else arr
        raise CheckpointError(
            f"unknown entry {sorted(x)} in a checkpoint's state layout; "
            "the file is from another version or was edited: re-create it"
        )

    return walk(skeleton)
