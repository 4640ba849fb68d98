"""Offline object stores for tests: S3 (moto) and GCS (gcp-storage-emulator) on 127.0.0.1.

Both servers run in-process on a background thread, on a free port, with in-memory storage.
They are plain context managers, meant to be wrapped by pytest fixtures::

    @pytest.fixture
    def s3():
        with s3_server() as server, filesystem_options(server.beam_args):
            yield server

What Beam needs to reach them:

* S3: Beam's S3 filesystem builds its boto3 client from ``S3Options`` (``--s3_endpoint_url``
  and friends); any option left unset is ``None``, so boto3 falls back to its own environment
  variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...). ``s3_server()`` sets both;
  an explicit option wins over the environment. Either way ``FileSystems`` must have *some*
  options (``filesystem_options()``, or a ``Pipeline`` built in the process): with none, Beam's
  S3 filesystem raises ``ValueError: Must provide one of client or options``.
* GCS: ``google-cloud-storage`` sends every request to ``STORAGE_EMULATOR_HOST`` and uses
  anonymous credentials there. Beam looks up Google default credentials once per process and,
  offline, retries that lookup with back-off for ~20 s; ``gcs_server()`` marks that lookup as
  done with no credentials, so Beam makes an anonymous client at once. That shortcut holds in
  this process only: SDK workers in subprocesses (``--direct_running_mode=multi_processing``)
  still spend ~25 s each on the lookup, so test ``gs://`` pipelines in-process.

Servers start in well under a second (the first ``s3_server()`` also imports moto, ~0.4 s) and
take ~0.5 s to stop; for many tests, keep one per module and call ``.reset()`` between tests.
Beam retries S3 connection errors for minutes: a wrong ``--s3_endpoint_url`` hangs, not fails.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
REGION = "us-east-1"
PROJECT = "test"


@contextlib.contextmanager
def patched_env(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for ``None``, unset) environment variables; restore the old values on exit."""
    old = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def filesystem_options(*args: list[str] | str) -> Iterator[object]:
    """Give Beam's ``FileSystems`` these pipeline options; restore the previous ones on exit.

    Takes lists of arguments (e.g. ``server.beam_args``) or single arguments. Note that building
    a ``beam.Pipeline`` also calls ``FileSystems.set_options`` (and never restores it).
    """
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    flat: list[str] = []
    for arg in args:
        flat.extend([arg] if isinstance(arg, str) else arg)
    previous = FileSystems._pipeline_options
    options = PipelineOptions(flat)
    FileSystems.set_options(options)
    try:
        yield options
    finally:
        FileSystems.set_options(previous)


@dataclass
class S3Server:
    endpoint: str
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY
    region: str = REGION
    startup_seconds: float = 0.0

    @property
    def beam_args(self) -> list[str]:
        return [
            f"--s3_endpoint_url={self.endpoint}",
            f"--s3_access_key_id={self.access_key_id}",
            f"--s3_secret_access_key={self.secret_access_key}",
            f"--s3_region_name={self.region}",
        ]

    @functools.cached_property
    def client(self):
        """A boto3 S3 client for this server (made once)."""
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def make_bucket(self, name: str) -> str:
        """Create a bucket; return its URI ``s3://name``."""
        self.client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def reset(self) -> None:
        """Drop every bucket and object (moto's state is per process, shared by all servers)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 (free port), with the ``AWS_*`` environment pointing at it.

    moto keeps its state per process, shared by every server: the state is reset on entry and
    on exit, so never run two of these at once.
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    started = time.monotonic()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    info = S3Server(endpoint=f"http://{host}:{port}")
    env = {
        "AWS_ACCESS_KEY_ID": info.access_key_id,
        "AWS_SECRET_ACCESS_KEY": info.secret_access_key,
        "AWS_DEFAULT_REGION": info.region,
        "AWS_ENDPOINT_URL": info.endpoint,
        # Nothing from a developer's ~/.aws may leak in.
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    werkzeug_log = logging.getLogger("werkzeug")  # else one INFO line per request
    old_level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    try:
        with patched_env(env):
            info.reset()
            info.startup_seconds = time.monotonic() - started
            yield info
    finally:
        with contextlib.suppress(Exception):
            info.reset()
        server.stop()
        if server._server is not None:
            server._server.server_close()
        werkzeug_log.setLevel(old_level)


@dataclass
class GCSServer:
    endpoint: str
    project: str = PROJECT
    beam_args: list[str] = field(default_factory=list)
    startup_seconds: float = 0.0
    _server: object = field(default=None, repr=False)

    @functools.cached_property
    def client(self):
        """A google-cloud-storage client for this server (anonymous, as the emulator wants)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )

    def make_bucket(self, name: str) -> str:
        """Create a bucket; return its URI ``gs://name``."""
        self.client.create_bucket(name)
        return f"gs://{name}"

    def reset(self) -> None:
        """Drop every bucket and object."""
        self._server.wipe()


@contextlib.contextmanager
def gcs_server() -> Iterator[GCSServer]:
    """A gcp-storage-emulator on 127.0.0.1 (free port), in memory, with its environment set.

    Sets ``STORAGE_EMULATOR_HOST``, ``NO_GCE_CHECK`` and the project, and makes Beam skip its
    (offline, slow) lookup of Google default credentials; all restored on exit.
    """
    from apache_beam.internal.gcp import auth
    from gcp_storage_emulator.server import create_server

    started = time.monotonic()
    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    port = server._api._httpd.server_address[1]
    info = GCSServer(endpoint=f"http://127.0.0.1:{port}", _server=server)
    env = {
        "STORAGE_EMULATOR_HOST": info.endpoint,
        "NO_GCE_CHECK": "True",
        "GOOGLE_CLOUD_PROJECT": info.project,
        # google-auth never looks for a metadata server (nor waits on one).
        "GCE_METADATA_HOST": "127.0.0.1:1",
        "GCE_METADATA_IP": "127.0.0.1:1",
        "GOOGLE_APPLICATION_CREDENTIALS": None,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    credentials = auth._Credentials
    saved = (credentials._credentials_init, credentials._credentials)
    try:
        with patched_env(env):
            with credentials._credentials_lock:
                credentials._credentials_init, credentials._credentials = True, None
            info.startup_seconds = time.monotonic() - started
            yield info
    finally:
        with credentials._credentials_lock:
            credentials._credentials_init, credentials._credentials = saved
        server.stop()


def upload_tree(local_dir: str | os.PathLike, uri_prefix: str) -> list[str]:
    """Copy every file under ``local_dir`` to ``uri_prefix/<relative path>``; return the URIs."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    root = Path(local_dir)
    prefix = uri_prefix.rstrip("/")
    written = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        uri = f"{prefix}/{path.relative_to(root).as_posix()}"
        raw = CompressionTypes.UNCOMPRESSED  # copy bytes as they are, even for *.gz
        with path.open("rb") as src, FileSystems.create(uri, compression_type=raw) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        written.append(uri)
    return written


def download_tree(uri_prefix: str, local_dir: str | os.PathLike) -> list[Path]:
    """Copy every object under ``uri_prefix/`` into ``local_dir``; return the local paths."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    prefix = uri_prefix.rstrip("/") + "/"
    root = Path(local_dir)
    (result,) = FileSystems.match([prefix + "**"])
    copied = []
    for meta in sorted(result.metadata_list, key=lambda m: m.path):
        relative = meta.path[len(prefix) :]
        parts = relative.split("/")
        if not relative or relative.endswith("/") or any(p in ("", ".", "..") for p in parts):
            continue  # "directory" placeholders, or keys that would escape local_dir
        target = root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        raw = CompressionTypes.UNCOMPRESSED
        with FileSystems.open(meta.path, compression_type=raw) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        copied.append(target)
    return copied
