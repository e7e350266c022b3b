"""A minimal Hugging Face Hub for tests: the HTTP endpoints the real `huggingface_hub` client (2.x) calls to
create a repo, upload a folder, read repo info and download files, served on 127.0.0.1 from memory.

    with HubServer(token="hf_test") as hub:      # point the client at it with HF_ENDPOINT=hub.url
        hub.commit("org/seeded", {"README.md": b"hi"})   # put a commit in directly, without the client

Uploads: preupload answers uploadMode "regular" for every file, so the client sends contents base64-encoded in
the NDJSON commit body and never uses LFS or Xet (no X-Xet-* headers are ever sent, so downloads are plain HTTP).
Every commit gets a new 40-hex sha; "main" points at the latest; any commit sha works as a revision (there are no
other branches or tags: commits always go on top of main).
Writes need `Authorization: Bearer <token>` when `token` is set; reads are public.
`hub.stall(name, after)` makes the next download of a file called `name` stop after `after` bytes until
`hub.release()` (or the server's end): a download cut half-way, for a test to kill the client there.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"  # what the Hub puts in a new repo

API = re.compile(
    r"^/api/models/(?P<repo>[^/]+/[^/]+)"
    r"(?:/(?P<op>revision|tree|preupload|commit)/(?P<rev>[^/]+))?(?P<rest>/.*)?$"
)
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


def client_env(home: Path, token: str, **extra: str) -> dict[str, str]:
    """A Hub client's environment: a fresh HF cache under `home`, `token`, no telemetry or progress bars and none of
    this shell's HF_ settings. huggingface_hub reads these once, when imported: give them to a subprocess and add
    HF_ENDPOINT=hub.url (or HF_HUB_OFFLINE=1)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_")) and k != "TRANSFORMERS_OFFLINE"
    }
    env.update(
        HF_HOME=str(home),
        HF_HUB_CACHE=str(home / "hub"),
        HF_TOKEN=token,
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return {**env, **extra}


def git_blob_sha(data: bytes) -> str:
    """The git object id of a file: what the Hub reports as a file's oid and (quoted) ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    private: bool
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> {path: content}
    main: str = ""

    def files(self, rev: str) -> tuple[str, dict[str, bytes]] | None:
        sha = self.main if rev == "main" else rev
        return (sha, self.commits[sha]) if sha in self.commits else None


class HubServer:
    """Threaded HTTP server speaking the Hub protocol; a context manager that starts and stops it."""

    def __init__(self, token: str | None = None):
        self.token, self.repos, self.lock = token, {}, threading.Lock()
        self.stalls: dict[str, int] = {}  # file name -> bytes to send before stalling (once)
        self.stalled, self.released = threading.Event(), threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.hub = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    def stall(self, name: str, after: int) -> threading.Event:
        """Stop the next GET of a file called `name` after `after` bytes; the returned event is set once it has."""
        self.stalls[name] = after
        return self.stalled

    def release(self) -> None:
        """Let a stalled download go on (its client may be gone by then)."""
        self.released.set()

    def create(self, repo_id: str, private: bool = False) -> None:
        with self.lock:
            self.repos[repo_id] = Repo(private)
        self.commit(repo_id, {".gitattributes": GITATTRIBUTES}, "initial commit")

    def commit(self, repo_id: str, changes: dict[str, bytes | None], message: str = "commit") -> str:
        """Apply `changes` (path -> content, None deletes) on top of main; returns the new commit sha."""
        with self.lock:
            if repo_id not in self.repos:
                self.repos[repo_id] = Repo(private=False)
            repo = self.repos[repo_id]
            files = dict(repo.commits.get(repo.main, {}))
            for path, content in changes.items():
                if content is None:
                    files.pop(path, None)
                else:
                    files[path] = content
            sha = hashlib.sha1(
                f"{repo.main}|{len(repo.commits)}|{message}".encode()
                + b"".join(git_blob_sha(v).encode() for v in files.values())
            ).hexdigest()
            repo.commits[sha], repo.main = files, sha
            return sha


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length

    def log_message(self, *args) -> None:  # quiet
        pass

    # ---------------------------------------------------------------- plumbing
    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def _send(
        self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False, partial: bool = False
    ) -> None:
        """The response; `partial`: `headers` carry the whole body's Content-Length and `body` is its first part."""
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if not partial:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
            self.wfile.flush()

    def _json(self, status: int, obj, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str | None, message: str, head: bool = False, **headers) -> None:
        extra = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {}), **headers}
        self._send(status, json.dumps({"error": message}).encode(), extra, head=head)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _authorized(self) -> bool:
        if self.hub.token is None or self.headers.get("Authorization") == f"Bearer {self.hub.token}":
            return True
        self._body()
        self._error(401, None, "Invalid credentials in Authorization header")
        return False

    def _lookup(self, repo_id: str, rev: str, head: bool = False):
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found", head=head)
        found = repo.files(rev)
        if found is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id: " + rev, head=head)
        return found

    # ---------------------------------------------------------------- GET / HEAD
    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        path = urlsplit(self.path).path
        if m := RESOLVE.match(path):
            return self._resolve(unquote(m["repo"]), unquote(m["rev"]), unquote(m["path"]), head)
        m = API.match(path)
        if m is None or m["op"] not in (None, "revision", "tree") or (m["op"] is None and m["rest"]):
            return self._error(404, None, "Not found", head=head)
        repo_id = unquote(m["repo"])
        found = self._lookup(repo_id, unquote(m["rev"] or "main"), head)
        if found is None:
            return
        sha, files = found
        if m["op"] == "tree":  # GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=...: one page, no Link header
            prefix = unquote(m["rest"] or "/").strip("/")
            entries = [
                {"type": "file", "path": p, "size": len(c), "oid": git_blob_sha(c)}
                for p, c in sorted(files.items())
                if not prefix or p.startswith(prefix + "/")
            ]
            return self._json(200, entries)
        # GET /api/models/{repo}[/revision/{rev}]: what ModelInfo needs
        self._json(
            200,
            {
                "id": repo_id,
                "modelId": repo_id,
                "sha": sha,
                "private": self.hub.repos[repo_id].private,
                "siblings": [{"rfilename": p} for p in sorted(files)],
            },
        )

    def _resolve(self, repo_id: str, rev: str, filename: str, head: bool) -> None:
        """HEAD/GET /{repo}/resolve/{rev}/{filename}: the file, with the headers hf_hub_download reads."""
        found = self._lookup(repo_id, rev, head)
        if found is None:
            return
        sha, files = found
        if filename not in files:
            return self._error(404, "EntryNotFound", "Entry not found", head=head, **{"X-Repo-Commit": sha})
        data = files[filename]
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{git_blob_sha(data)}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        status = 200
        if m := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "")):  # resumed download
            start, end = int(m[1]), int(m[2]) if m[2] else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        after = None if head else self.hub.stalls.pop(filename.rsplit("/", 1)[-1], None)
        if after is None:
            return self._send(status, data, headers, head=head)
        self._send(status, data[:after], {**headers, "Content-Length": str(len(data))}, partial=True)
        self.hub.stalled.set()
        self.hub.released.wait()
        try:
            self.wfile.write(data[after:])
        except OSError:  # the client was killed while it waited
            self.close_connection = True

    # ---------------------------------------------------------------- POST
    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/api/validate-yaml":  # README.md front matter check before upload
            self._body()
            return self._json(200, {"errors": [], "warnings": []})
        if not self._authorized():
            return
        if path == "/api/repos/create":
            payload = json.loads(self._body())
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            if repo_id in self.hub.repos:
                return self._json(
                    409, {"error": "You already created this model repo", "url": f"{self.hub.url}/{repo_id}"}
                )
            self.hub.create(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
            return self._json(200, {"url": f"{self.hub.url}/{repo_id}"})
        m = API.match(path)
        if m is None or m["op"] not in ("preupload", "commit"):
            self._body()
            return self._error(404, None, "Not found")
        repo_id, body = unquote(m["repo"]), self._body()
        found = self._lookup(repo_id, unquote(m["rev"]))
        if found is None:
            return
        if m["op"] == "preupload":  # every file goes inline in the commit ("regular"); oid lets the client skip no-ops
            files = found[1]
            return self._json(
                200,
                {
                    "files": [
                        {
                            "path": f["path"],
                            "uploadMode": "regular",
                            "shouldIgnore": False,
                            "oid": git_blob_sha(files[f["path"]]) if f["path"] in files else None,
                        }
                        for f in json.loads(body)["files"]
                    ]
                },
            )
        # POST /api/models/{repo}/commit/{rev}: NDJSON, a header line then one line per operation
        changes, message = {}, "commit"
        for line in body.splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value["summary"]
            elif key == "file":
                changes[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                changes[value["path"]] = None
            else:  # lfsFile / deletedFolder / copies: never produced against this server
                return self._error(400, None, f"unsupported commit operation {key}")
        sha = self.hub.commit(repo_id, changes, message)
        self._json(
            200, {"commitUrl": f"{self.hub.url}/{repo_id}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None}
        )
