"""Cross-checks clipkit's Hub cache with python's huggingface_hub, both ways, offline.

Serves a model folder as a Hub repository from a loopback server (revision and tree APIs,
`resolve` with ETag / X-Linked-Etag / X-Repo-Commit, LFS files redirected to storage on
another host (`localhost` for 127.0.0.1),
Range requests), then:
  1. huggingface_hub.snapshot_download writes a cache; `clipkit models list` and
     `clipkit embed --model ORG/NAME` (HF_HUB_OFFLINE=1) read it;
  2. `clipkit models pull` writes a cache; huggingface_hub (scan_cache_dir,
     hf_hub_download with local_files_only) and transformers' CLIPModel.from_pretrained
     (local_files_only) read it, and transformers' text embedding equals clipkit's.

    python tools/check_hub_cache.py --clipkit target/release/clipkit \
        --model tests/fixtures/models/quickstart
"""

import argparse
import hashlib
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = "clipkit-test/quickstart"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def serve(model_dir: Path) -> str:
    files = {p.name: p.read_bytes() for p in sorted(model_dir.iterdir()) if p.is_file()}
    lfs = {name for name in files if name.endswith(".safetensors")}
    by_sha = {hashlib.sha256(files[n]).hexdigest(): n for n in lfs}

    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, status, body=b"", headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def ranged(self, data, headers):
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                headers = list(headers) + [("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")]
                return self.send(206, data[start:], headers)
            self.send(200, data, headers)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            path = self.path.split("?")[0]
            api = f"/api/models/{REPO}/"
            if path.startswith(api + "revision/"):
                body = {"id": REPO, "sha": COMMIT, "siblings": [{"rfilename": n} for n in files]}
                return self.send(200, json.dumps(body).encode(), [("Content-Type", "application/json")])
            if path.startswith(api + "tree/"):
                tree = []
                for name, data in files.items():
                    entry = {"type": "file", "oid": git_sha1(data), "size": len(data), "path": name}
                    if name in lfs:
                        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                    tree.append(entry)
                return self.send(200, json.dumps(tree).encode(), [("Content-Type", "application/json")])
            prefix = f"/{REPO}/resolve/"
            if path.startswith(prefix):
                name = path[len(prefix):].split("/", 1)[1]
                if name not in files:
                    return self.send(404, b"", [("X-Error-Code", "EntryNotFound")])
                data = files[name]
                if name in lfs:
                    sha = hashlib.sha256(data).hexdigest()
                    return self.send(302, b"", [
                        ("Location", f"http://{self.headers['Host'].replace('127.0.0.1', 'localhost')}/cdn/{sha}"),
                        ("X-Linked-Etag", f'"{sha}"'), ("X-Linked-Size", str(len(data))),
                        ("X-Repo-Commit", COMMIT), ("ETag", '"pointer"')])
                return self.ranged(data, [("ETag", f'"{git_sha1(data)}"'), ("X-Repo-Commit", COMMIT)])
            if path.startswith("/cdn/") and path[5:] in by_sha:
                return self.ranged(files[by_sha[path[5:]]], [("ETag", '"storage"')])
            self.send(404)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def clipkit(binary, args, env):
    out = subprocess.run([binary, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"clipkit {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clipkit", required=True)
    parser.add_argument("--model", required=True, type=Path)
    args = parser.parse_args()
    endpoint = serve(args.model)
    os.environ["HF_ENDPOINT"] = endpoint
    os.environ.pop("HF_TOKEN", None)
    import huggingface_hub  # after HF_ENDPOINT is set: it is read at import
    import torch
    import transformers

    text = "a red circle"
    with tempfile.TemporaryDirectory() as tmp:
        # 1. huggingface_hub writes, clipkit reads.
        python_cache = Path(tmp, "python")
        huggingface_hub.snapshot_download(REPO, cache_dir=python_cache)
        env = dict(os.environ, HF_HUB_CACHE=str(python_cache), HF_HUB_OFFLINE="1")
        listed = json.loads(clipkit(args.clipkit, ["models", "list", "--json"], env))
        assert listed["models"][0]["revisions"][0]["layout"] == "huggingface", listed
        clipkit_from_python = json.loads(clipkit(args.clipkit, ["embed", "--model", REPO, "--text", text, "--json"], env))
        print(f"1. huggingface_hub {huggingface_hub.__version__} wrote the cache; clipkit read it offline")

        # 2. clipkit writes, huggingface_hub and transformers read.
        rust_cache = Path(tmp, "rust")
        env = dict(os.environ, HF_HUB_CACHE=str(rust_cache))
        env.pop("HF_HUB_OFFLINE", None)
        clipkit(args.clipkit, ["models", "pull", REPO], env)
        info = huggingface_hub.scan_cache_dir(rust_cache)
        repo = next(iter(info.repos))
        assert repo.repo_id == REPO and next(iter(repo.revisions)).commit_hash == COMMIT, info
        assert not info.warnings, info.warnings
        config = huggingface_hub.hf_hub_download(REPO, "config.json", cache_dir=rust_cache, local_files_only=True)
        assert Path(config).read_bytes() == (args.model / "config.json").read_bytes()
        model = transformers.CLIPModel.from_pretrained(REPO, cache_dir=rust_cache, local_files_only=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(REPO, cache_dir=rust_cache, local_files_only=True)
        with torch.no_grad():
            out = model.get_text_features(**tokenizer([text], return_tensors="pt"))
            features = out if isinstance(out, torch.Tensor) else out.pooler_output
            ours = torch.nn.functional.normalize(features, dim=-1)[0]
        theirs = torch.tensor(clipkit_from_python["texts"][0]["embedding"])
        diff = (ours - theirs).abs().max().item()
        assert diff < 1e-4, diff
        print(f"2. clipkit wrote the cache; huggingface_hub scanned it ({repo.size_on_disk} bytes), "
              f"transformers {transformers.__version__} loaded it; text embeddings agree to {diff:.1e}")


if __name__ == "__main__":
    main()
