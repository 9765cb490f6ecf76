"""Sharing a run through DVC remotes: the committed default (a directory in the user's home) and
an S3 bucket on a real S3 API server on loopback (moto's server mode).

One tiny `dvc repro` in an "origin" repository; every other repository is a fresh `git clone`
of it that gets the run only by `dvc pull`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from digits.mnist import Mnist, default_cache_dir
from tests.helpers import copy_project, dvc_env, git, read_yaml, require, run, run_unchecked

pytestmark = pytest.mark.e2e

MODEL = "models/model.keras"
DEFAULT_REMOTE = ".local/share/digit-classification/dvc-remote"  # under HOME, from .dvc/config
UP_TO_DATE = "Data and pipelines are up to date"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A new user's environment: an empty HOME (so the default remote starts empty and the real
    one is untouched), and the MNIST cache where it already is (nothing is fetched again)."""
    home = tmp_path_factory.mktemp("home")
    return dvc_env(HOME=str(home), DIGITS_CACHE_DIR=str(default_cache_dir().parent))


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    """The repository that ran the pipeline (tiny params) and committed the run."""
    workdir = copy_project(tmp_path_factory.mktemp("clones") / "origin")
    run(workdir, "dvc", "repro", env=env)
    git(workdir, "add", "-A")
    git(workdir, "commit", "-qm", "tiny run")
    return workdir


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory: pytest.TempPathFactory, mnist: Mnist) -> Path:
    path = tmp_path_factory.mktemp("images") / "digit.png"
    Image.fromarray(mnist.test_images[0]).save(path)
    return path


def clone(origin: Path, name: str) -> Path:
    target = origin.parent / name
    git(origin.parent, "clone", "-q", str(origin), str(target))
    return target


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def lock_md5(repo: Path, path: str) -> str:
    """The md5 dvc.lock records for an output of the pipeline."""
    lock = read_yaml(repo / "dvc.lock")
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return out["md5"]
    raise AssertionError(f"{path} is not an output in dvc.lock")


def test_a_fresh_clone_pulls_the_run_from_the_default_remote_and_trains_nothing(
    origin: Path, env: dict[str, str], digit_png: Path, tmp_path: Path
) -> None:
    pushed = run(origin, "dvc", "push", env=env)
    assert "pushed" in pushed
    remote = Path(env["HOME"]) / DEFAULT_REMOTE / "files" / "md5"
    model_hash = lock_md5(origin, MODEL)
    assert (remote / model_hash[:2] / model_hash[2:]).is_file()

    fresh = clone(origin, "fresh")
    assert not (fresh / MODEL).exists()
    run(fresh, "dvc", "pull", env=env)
    assert md5(fresh / MODEL) == model_hash
    assert UP_TO_DATE in run(fresh, "dvc", "status", env=env)
    repro = run(fresh, "dvc", "repro", env=env)
    assert UP_TO_DATE in repro and "Running stage" not in repro
    assert git(fresh, "status", "--porcelain") == ""

    predicted = [
        json.loads(run(repo, "digits", "predict", "--json", str(digit_png), env=env))
        for repo in (origin, fresh)
    ]
    assert predicted[1] == predicted[0]
    assert predicted[1][0]["digit"] in range(10)

    # docs/sharing.md's per-user override: .dvc/config.local (git-ignored) moves the remote.
    elsewhere = tmp_path / "team-remote"
    run(fresh, "dvc", "remote", "modify", "--local", "storage", "url", str(elsewhere), env=env)
    assert "pushed" in run(fresh, "dvc", "push", env=env)
    assert (elsewhere / "files" / "md5" / model_hash[:2] / model_hash[2:]).is_file()
    assert git(fresh, "status", "--porcelain") == ""


# --- S3 ---------------------------------------------------------------------------------------

BUCKET = "digits-test"
KEYS = {"access_key_id": "testing", "secret_access_key": "testing", "region": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on an OS-chosen loopback port, with one empty bucket."""
    installed = importlib.util.find_spec
    require(installed("dvc_s3") is not None, "needs the s3 extra: pip install -e '.[s3]'")
    require(installed("moto") is not None, "needs moto[server] (the dev extra)")
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, **s3_client_keys()).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def s3_client_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": KEYS["access_key_id"],
        "aws_secret_access_key": KEYS["secret_access_key"],
        "region_name": KEYS["region"],
    }


def use_s3(repo: Path, endpoint: str, env: dict[str, str], remote: str = "storage") -> None:
    """docs/sharing.md's steps for a bucket, plus the endpoint of the local server."""
    settings = {"url": f"s3://{BUCKET}/digits", "endpointurl": endpoint, **KEYS}
    if remote != "storage":
        run(repo, "dvc", "remote", "add", "--local", remote, settings.pop("url"), env=env)
    for key, value in settings.items():
        run(repo, "dvc", "remote", "modify", "--local", remote, key, value, env=env)


@pytest.mark.s3
def test_an_s3_remote_shares_the_run_and_a_corrupted_object_fails_the_pull(
    s3_endpoint: str, origin: Path, env: dict[str, str]
) -> None:
    """The bucket's remote inherits `verify = true` from .dvc/config: without it DVC trusts S3
    objects and would check out the corrupted model silently."""
    import boto3

    s3_env = {**env, "AWS_EC2_METADATA_DISABLED": "true"}  # never ask for cloud credentials
    use_s3(origin, s3_endpoint, s3_env, remote="bucket")
    assert "pushed" in run(origin, "dvc", "push", "-r", "bucket", env=s3_env)

    fresh = clone(origin, "s3-fresh")
    use_s3(fresh, s3_endpoint, s3_env)
    run(fresh, "dvc", "pull", env=s3_env)
    model_hash = lock_md5(origin, MODEL)
    assert md5(fresh / MODEL) == model_hash
    assert UP_TO_DATE in run(fresh, "dvc", "status", env=s3_env)

    # Bit rot on the remote: same size, one byte changed.
    client = boto3.client("s3", endpoint_url=s3_endpoint, **s3_client_keys())
    key = f"digits/files/md5/{model_hash[:2]}/{model_hash[2:]}"
    stored = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    stored[len(stored) // 2] ^= 0xFF
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(stored))

    victim = clone(origin, "s3-corrupted")
    use_s3(victim, s3_endpoint, s3_env)
    pulled = run_unchecked(victim, "dvc", "pull", env=s3_env)
    assert pulled.returncode != 0, pulled.stdout
    assert MODEL in pulled.stderr
    assert not (victim / MODEL).exists()
    cached = victim / ".dvc" / "cache" / "files" / "md5" / model_hash[:2] / model_hash[2:]
    assert not cached.exists() or md5(cached) == model_hash
    data = "data/prepared/test.npz"  # the intact objects did arrive
    assert md5(victim / data) == md5(origin / data)
