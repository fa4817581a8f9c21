"""Shared fixtures: the bundled digits zoo and a real local S3 server, each started once per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits_zoo(tmp_path_factory):
    """Directory holding the bundled zoo (models, zoo.json, digits_test_X.npy), trained once."""
    from exactcompress.training.digits_zoo import build_digits_zoo

    directory = tmp_path_factory.mktemp("zoo")
    build_digits_zoo(directory, seed=0)
    return directory


#: (access key, secret) of a second identity of the session's S3 server that may read and list but not write
READER_CREDENTIALS = ("AKREADONLYTESTS0000", "read-only-secret-of-the-test-server-0000")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real local S3 server (SeaweedFS) shared by the session; tests must leave it running. Besides the
    server's own identity it knows a read-only one (``reader_endpoint``)."""
    import json

    from exactcompress.storage.local_s3 import LocalS3Server, load_or_create_credentials

    server = LocalS3Server(tmp_path_factory.mktemp("s3"))
    identities = server.data_dir / "identities.json"
    load_or_create_credentials(identities)
    config = json.loads(identities.read_text())
    access_key, secret_key = READER_CREDENTIALS
    config["identities"].append({"name": "reader", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                                 "actions": ["Read", "List"]})
    identities.write_text(json.dumps(config))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def reader_endpoint(s3_server):
    """The session's S3 server with credentials that may read and list every bucket but write nothing."""
    from dataclasses import replace

    access_key, secret_key = READER_CREDENTIALS
    return replace(s3_server.endpoint, access_key=access_key, secret_key=secret_key)


@pytest.fixture
def use_s3_endpoint(monkeypatch):
    """``use(endpoint)`` points boto3 (the standard AWS environment variables) at a local server for one test."""

    def use(endpoint) -> None:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in endpoint.env().items():
            monkeypatch.setenv(name, value)

    return use


@pytest.fixture
def s3_storage(s3_server, use_s3_endpoint):
    """``s3://<fresh bucket>/prefix`` on the session's server, with the AWS variables set for this test; the
    bucket and its objects are deleted afterwards (each bucket holds a volume slot of the server)."""
    import uuid

    from exactcompress.storage import open_storage

    use_s3_endpoint(s3_server.endpoint)
    storage = open_storage(f"s3://test-{uuid.uuid4().hex[:16]}/prefix")
    storage.ensure_bucket()
    yield storage
    s3_server.endpoint.client().delete_bucket(Bucket=storage.bucket)  # weed deletes a bucket with its objects


@pytest.fixture(scope="module")
def local_ray(s3_server):
    """One embedded Ray (2 CPUs) per test module; its workers inherit the S3 endpoint and credentials of the
    session's server, as they do from a user's shell."""
    import ray

    from exactcompress.distributed.zoo_job import connect

    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_server.endpoint.env().items():
            patch.setenv(name, value)
        connect(None, num_cpus=2)
        yield
        ray.shutdown()
