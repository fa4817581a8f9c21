"""Storage over a local directory and a real S3 server (SeaweedFS): same behaviour, safe keys, faults."""

from __future__ import annotations

import os
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from exactcompress.errors import InputError, KeyNotFound
from exactcompress.storage import (
    LocalStorage,
    S3Storage,
    open_storage,
    safe_key,
    sha256_bytes,
)
from exactcompress.storage.keys import common_folder
from exactcompress.storage.local_s3 import LocalS3Server


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    """The same tests run against a local directory and an s3:// prefix on the real server."""
    if request.param == "local":
        return open_storage(str(tmp_path / "root"))
    return request.getfixturevalue("s3_storage")


def test_put_get_overwrite(storage):
    storage.put_bytes("a/b.bin", bytes(range(256)))
    assert storage.get_bytes("a/b.bin") == bytes(range(256))
    storage.put_bytes("a/b.bin", b"")
    assert storage.get_bytes("a/b.bin") == b""


def test_missing_key_is_a_one_line_error_naming_the_object(storage):
    with pytest.raises(KeyNotFound) as raised:
        storage.get_bytes("runs/missing.json")
    assert not isinstance(raised.value, InputError)  # a missing object is not bad input by itself
    assert raised.value.exit_code == 2
    assert str(raised.value) == f"{storage.url('runs/missing.json')}: no such object"
    copy = pickle.loads(pickle.dumps(raised.value))
    assert type(copy) is KeyNotFound and str(copy) == str(raised.value)
    storage.put_bytes("runs/present/x", b"1")
    with pytest.raises(KeyNotFound):
        storage.get_bytes("runs/present")  # a "directory" is not an object


def test_exists_and_delete(storage):
    assert not storage.exists("k")
    storage.put_bytes("k", b"v")
    assert storage.exists("k")
    storage.delete("k")
    storage.delete("k")  # deleting a missing key is fine
    assert not storage.exists("k")


def test_list_keys_is_sorted_recursive_and_filters_by_string_prefix(storage):
    assert storage.list_keys() == []
    for key in ["b", "a/c/d", "a/b", "ab", "a=1,x@y+z-w.v_u"]:
        storage.put_bytes(key, key.encode())
    assert storage.list_keys() == ["a/b", "a/c/d", "a=1,x@y+z-w.v_u", "ab", "b"]
    assert storage.list_keys("a") == ["a/b", "a/c/d", "a=1,x@y+z-w.v_u", "ab"]
    assert storage.list_keys("a/") == ["a/b", "a/c/d"]
    assert storage.list_keys("a/c/d") == ["a/c/d"]
    assert storage.list_keys("zz/") == []
    storage.delete("a/c/d")
    assert storage.list_keys("a/") == ["a/b"]


def test_list_keys_pages_past_a_thousand_objects(storage):
    keys = [f"many/{index:04d}" for index in range(1003)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: storage.put_bytes(key, b""), keys))
    assert storage.list_keys("many/") == keys


def test_put_if_absent_only_creates(storage):
    assert storage.put_if_absent("claims/job-1", b"first")
    assert not storage.put_if_absent("claims/job-1", b"second")
    assert storage.get_bytes("claims/job-1") == b"first"


def test_put_if_absent_has_exactly_one_winner_under_contention(storage):
    def claim(index: int) -> bool:
        return storage.put_if_absent("claims/race", f"writer-{index}".encode())

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(claim, range(16)))
    assert won.count(True) == 1
    assert storage.get_bytes("claims/race") == f"writer-{won.index(True)}".encode()
    assert storage.list_keys() == ["claims/race"]  # no temp files left behind


def test_upload_download_round_trip(storage, tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    storage.upload(source, "models/m.bin")
    target = tmp_path / "new" / "dir" / "copy.bin"
    storage.download("models/m.bin", target)
    assert sha256_bytes(target.read_bytes()) == sha256_bytes(payload)
    assert storage.get_bytes("models/m.bin") == payload


def test_fingerprints_name_one_version_of_the_bytes(storage, tmp_path):
    storage.put_bytes("zoo/a/m.pt", b"first")
    storage.put_bytes("zoo/b.pt", b"other")
    listed = storage.fingerprints(["zoo/a/m.pt", "zoo/b.pt", "zoo/missing.pt"])
    assert set(listed) == {"zoo/a/m.pt", "zoo/b.pt"} and listed["zoo/a/m.pt"] != listed["zoo/b.pt"]
    assert storage.download("zoo/a/m.pt", tmp_path / "m.pt") == listed["zoo/a/m.pt"]  # listing and read agree
    assert storage.fingerprints(["zoo/a/m.pt"]) == {"zoo/a/m.pt": listed["zoo/a/m.pt"]}  # stable
    storage.put_bytes("zoo/a/m.pt", b"second")
    changed = storage.fingerprints(["zoo/a/m.pt"])["zoo/a/m.pt"]
    assert changed != listed["zoo/a/m.pt"]
    assert storage.download("zoo/a/m.pt", tmp_path / "m.pt") == changed
    assert storage.fingerprints([]) == {}


def test_fingerprints_cover_keys_across_folders_and_nothing_else(storage):
    storage.put_bytes("zoo/x/m.pt", b"m")
    storage.put_bytes("zoo/xy.pt", b"not asked for")
    assert list(storage.fingerprints(["zoo/x/m.pt"])) == ["zoo/x/m.pt"]
    assert sorted(storage.child("zoo").fingerprints(["x/m.pt", "xy.pt"])) == ["x/m.pt", "xy.pt"]


def test_common_folder():
    assert common_folder(["zoo/x/m.pt", "zoo/xy.pt"]) == "zoo/"
    assert common_folder(["zoo/x/m.pt"]) == "zoo/x/"
    assert common_folder(["a.pt", "zoo/b.pt"]) == ""


def test_download_of_missing_key_leaves_no_file(storage, tmp_path):
    target = tmp_path / "copy.bin"
    with pytest.raises(KeyNotFound):
        storage.download("nope", target)
    assert list(tmp_path.glob("*copy.bin*")) == []


def test_child_is_rooted_under_the_parent(storage):
    child = storage.child("runs/r1")
    child.put_bytes("report.json", b"{}")
    assert storage.get_bytes("runs/r1/report.json") == b"{}"
    assert child.list_keys() == ["report.json"]
    assert child.url("report.json") == storage.url("runs/r1/report.json")
    assert child.child("x").url("y") == storage.url("runs/r1/x/y")
    with pytest.raises(InputError):
        storage.child("../escape")


def test_storage_survives_pickling(storage):
    storage.put_bytes("k", b"before")  # creates the S3 client, which must not be pickled
    copy = pickle.loads(pickle.dumps(storage))
    assert copy.get_bytes("k") == b"before"
    copy.put_bytes("k2", b"after")
    assert storage.get_bytes("k2") == b"after"
    assert copy.url("k") == storage.url("k")


BAD_KEYS = ["..", "a/../b", "./a", "/abs", "a//b", "a/", "", "a\\b", "a\x00b", "a\nb", "a\x7fb", "a b", "a:b",
            "a*b", "x" * 256]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_safe_key_refuses(key):
    with pytest.raises(InputError) as raised:
        safe_key(key)
    assert repr(key)[:60] in str(raised.value)
    assert "\n" not in str(raised.value)


def test_safe_key_joins_parts():
    assert safe_key("runs", "abc/def", "x.json") == "runs/abc/def/x.json"
    with pytest.raises(InputError):
        safe_key("runs", "", "x")
    with pytest.raises(InputError):
        safe_key("runs", "/etc/passwd")


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "a//b", "a\\b", "a\x01b"], ids=repr)
def test_every_method_refuses_unsafe_keys(storage, tmp_path, key):
    (tmp_path / "file").write_bytes(b"x")
    calls = [lambda: storage.get_bytes(key), lambda: storage.put_bytes(key, b"x"),
             lambda: storage.put_if_absent(key, b"x"), lambda: storage.exists(key), lambda: storage.delete(key),
             lambda: storage.download(key, tmp_path / "out"), lambda: storage.upload(tmp_path / "file", key),
             lambda: storage.url(key), lambda: storage.child(key), lambda: storage.list_keys(key)]
    for call in calls:
        with pytest.raises(InputError):
            call()
    assert storage.list_keys() == []
    assert not (tmp_path / "outside").exists()


def test_open_storage_urls(tmp_path):
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert open_storage(f"file://{tmp_path}").url("k") == str(tmp_path / "k")
    s3 = open_storage("s3://my-bucket/some/prefix/")
    assert isinstance(s3, S3Storage) and s3.url("k") == "s3://my-bucket/some/prefix/k"
    assert open_storage("s3://my-bucket").url("k") == "s3://my-bucket/k"
    for bad in ["s3://Bad_Bucket/x", "s3://b/x", "s3://my-bucket/a/../b", "ftp://host/x", "file://host/x"]:
        with pytest.raises(InputError):
            open_storage(bad)


def test_local_writes_are_atomic_for_concurrent_readers(tmp_path):
    storage = LocalStorage(tmp_path)
    versions = [bytes([65 + index]) * (2 * 1024 * 1024) for index in range(3)]
    storage.put_bytes("obj", versions[0])
    stop = threading.Event()

    def write() -> None:
        index = 0
        while not stop.is_set():
            index += 1
            storage.put_bytes("obj", versions[index % 3])

    writer = threading.Thread(target=write)
    writer.start()
    try:
        seen = {storage.get_bytes("obj") for _ in range(300)}
    finally:
        stop.set()
        writer.join()
    assert seen <= set(versions)
    assert storage.list_keys() == ["obj"]


def test_local_listing_ignores_temp_files_of_interrupted_writes(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.put_bytes("d/obj", b"x")
    (tmp_path / "d" / ".obj.k3j2h~tmp").write_bytes(b"half")  # what a crash mid-write leaves
    assert storage.list_keys() == ["d/obj"]
    with pytest.raises(FileNotFoundError):
        storage.upload(tmp_path / "no-such-file", "d/obj")
    assert storage.get_bytes("d/obj") == b"x"
    assert sorted(path.name for path in (tmp_path / "d").iterdir()) == [".obj.k3j2h~tmp", "obj"]


def test_s3_storage_never_shows_credentials(s3_storage, s3_server):
    s3_storage.put_bytes("k", b"v")
    endpoint = s3_server.endpoint
    for text in [repr(s3_storage), str(s3_storage.__getstate__()), repr(endpoint)]:
        assert endpoint.secret_key not in text
    assert endpoint.secret_key.encode() not in pickle.dumps(s3_storage)
    assert endpoint.access_key.encode() not in pickle.dumps(s3_storage)


def test_wrong_secret_is_rejected_by_the_server(s3_storage, monkeypatch):
    s3_storage.put_bytes("k", b"v")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + os.environ["AWS_SECRET_ACCESS_KEY"][6:])
    intruder = open_storage(s3_storage.url())
    for call in [lambda: intruder.get_bytes("k"), lambda: intruder.put_bytes("k", b"evil"),
                 lambda: intruder.list_keys(), lambda: intruder.exists("k")]:
        with pytest.raises(InputError, match="access denied"):
            call()
    assert s3_storage.get_bytes("k") == b"v"


def test_missing_bucket_is_an_input_error(s3_storage):
    with pytest.raises(InputError, match="bucket does not exist"):
        open_storage("s3://no-such-bucket-here/x").get_bytes("k")


def test_bucket_problem_heads_the_bucket_and_writes_nothing(s3_storage, s3_server, monkeypatch):
    url = s3_server.endpoint.url
    assert s3_storage.bucket_problem() is None
    missing = open_storage("s3://reslts/zoo")
    assert missing.bucket_problem() == f"bucket 'reslts' does not exist at {url}"
    assert "reslts" not in [bucket["Name"] for bucket in s3_server.endpoint.client().list_buckets()["Buckets"]]
    assert s3_storage.list_keys() == []  # nothing written into an existing bucket either
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + os.environ["AWS_SECRET_ACCESS_KEY"][6:])
    assert open_storage(s3_storage.url()).bucket_problem() == (
        f"bucket {s3_storage.bucket!r} is not accessible with these credentials at {url} (HTTP 403; check the AWS "
        "credentials)")


def test_write_problem_puts_and_deletes_a_probe_that_leaves_nothing(s3_storage, s3_server, reader_endpoint,
                                                                    use_s3_endpoint):
    assert s3_storage.write_problem() is None
    objects = s3_server.endpoint.client().list_objects_v2(Bucket=s3_storage.bucket).get("Contents", [])
    assert objects == []  # the probe is gone again
    use_s3_endpoint(reader_endpoint)
    reader = open_storage(s3_storage.url())
    assert reader.bucket_problem() is None  # the bucket is there and these credentials reach it
    problem = reader.write_problem()
    assert problem == (f"{s3_storage.url()} cannot be written: the job writes its results there, but a PUT was "
                       f"refused with these credentials at {s3_server.endpoint.url} (HTTP 403, AccessDenied)")


def test_restart_keeps_data_and_credentials(tmp_path, use_s3_endpoint):
    server = LocalS3Server(tmp_path / "s3")
    try:
        first = server.start()
        use_s3_endpoint(first)
        storage = open_storage("s3://keep/p")
        storage.ensure_bucket()
        storage.put_bytes("k", b"kept")
        assert server.restart() == first  # same ports, same credentials
        assert storage.get_bytes("k") == b"kept"
        server.stop()
        assert server.pid is None
        fresh = LocalS3Server(tmp_path / "s3").start()  # a new process object: new ports, same data and keys
        assert (fresh.access_key, fresh.secret_key) == (first.access_key, first.secret_key)
        use_s3_endpoint(fresh)
        assert open_storage("s3://keep/p").get_bytes("k") == b"kept"
    finally:
        server.stop()


@pytest.mark.slow
def test_calls_ride_over_a_server_restart(tmp_path, use_s3_endpoint):
    server = LocalS3Server(tmp_path / "s3")
    restarter = threading.Timer(3.0, server.restart)
    try:
        use_s3_endpoint(server.start())
        storage = open_storage("s3://fault/p")
        storage.ensure_bucket()
        storage.put_bytes("before", b"1")
        server.stop()
        restarter.start()
        started = time.monotonic()
        storage.put_bytes("during", b"2")  # issued while the server is down
        waited = time.monotonic() - started
        restarter.join()
        assert waited >= 2.5
        assert storage.get_bytes("during") == b"2" and storage.get_bytes("before") == b"1"
    finally:
        restarter.cancel()
        if restarter.is_alive():
            restarter.join()
        server.stop()


def test_an_unreachable_server_is_retried_with_a_warning_then_one_line(monkeypatch, caplog):
    import socket

    import exactcompress.storage.s3 as s3
    from exactcompress.errors import StorageUnavailable

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setattr(s3, "CONNECTION_RETRY_SECONDS", 3.0)
    monkeypatch.setattr(s3, "RETRY_WARNING_SECONDS", 1.0)
    with caplog.at_level("WARNING", logger="exactcompress.storage.s3"):
        with pytest.raises(StorageUnavailable) as caught:
            open_storage("s3://bucket/zoo").list_keys()
    assert "\n" not in str(caught.value) and "cannot reach the storage server" in str(caught.value)
    assert "retried for 3 s" in str(caught.value)
    warnings = [record.getMessage() for record in caplog.records]
    # one warning per RETRY_WARNING_SECONDS while it retries: at least the first (on a loaded machine one
    # connection attempt can take most of the 3 s window, so a second one is not guaranteed)
    assert warnings and all(f"127.0.0.1:{port}, retrying" in message for message in warnings)
    assert "attempt 1;" in warnings[0]


def test_local_storage_never_follows_a_link_out_of_its_root(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("credentials")
    root = tmp_path / "root"
    (root / "inner").mkdir(parents=True)
    (root / "inner" / "real.pt").write_bytes(b"model")
    (root / "out.pt").symlink_to(secret)
    (root / "in.pt").symlink_to(root / "inner" / "real.pt")
    (root / "escape").symlink_to(tmp_path)
    storage = open_storage(str(root))
    assert storage.get_bytes("in.pt") == b"model"  # a link that stays inside is an ordinary file
    for key in ("out.pt", "escape/secret.txt"):
        for read in (storage.get_bytes, storage.size, lambda key: storage.download(key, tmp_path / "copy")):
            with pytest.raises(InputError, match="is a symbolic link to outside"):
                read(key)
    assert not (tmp_path / "copy").exists()


class FlakyFront:
    """A TCP front for a real S3 server whose first ``failures`` connections get ``503 SlowDown`` (what a busy
    or just-restarted server answers); every later connection is piped to the server unchanged."""

    BODY = b'<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>busy</Message></Error>'
    ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nConnection: close\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))

    def __init__(self, target_url: str, failures: int, cut_after: int | None = None) -> None:
        """With ``cut_after``, a failing connection is piped to the server instead, but its answer is cut off
        after that many bytes (a server gone mid-download)."""
        import socket
        from urllib.parse import urlparse

        target = urlparse(target_url)
        self.target, self.failures, self.failed = (target.hostname, target.port), failures, 0
        self.cut_after = cut_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.failed < self.failures and self.cut_after is not None:
                self.failed += 1
                upstream = socket.create_connection(self.target)
                threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
                threading.Thread(target=self._pipe, args=(upstream, client, self.cut_after), daemon=True).start()
                continue
            if self.failed < self.failures:
                self.failed += 1
                client.recv(65536)  # the request's head (the tests send GETs)
                client.sendall(self.ANSWER)
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source, sink, limit: int | None = None) -> None:
        """Copy ``source`` to ``sink`` until either closes, or (with ``limit``) until that many bytes went."""
        sent = 0
        try:
            while data := source.recv(65536):
                if limit is not None and sent + len(data) >= limit:
                    sink.sendall(data[: limit - sent])
                    for end in (source, sink):  # close() alone leaves a socket open that another thread reads
                        end.shutdown(2)
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def close(self) -> None:
        self.listener.close()


def test_transient_server_errors_outlasting_boto3s_retries_are_retried_then_the_call_succeeds(
        s3_storage, monkeypatch, caplog):
    s3_storage.put_bytes("k", b"kept")
    front = FlakyFront(os.environ["AWS_ENDPOINT_URL"], failures=6)  # boto3 itself tries 3 times per call
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", front.url)
        with caplog.at_level("WARNING", logger="exactcompress.storage.s3"):
            assert S3Storage(s3_storage.bucket, s3_storage.prefix).get_bytes("k") == b"kept"
        assert front.failed == 6
        assert any("keeps failing" in record.getMessage() and "SlowDown" in record.getMessage()
                   for record in caplog.records)
    finally:
        front.close()


def test_a_server_that_keeps_failing_ends_in_one_line_after_the_retry_window(s3_storage, monkeypatch):
    import exactcompress.storage.s3 as s3
    from exactcompress.errors import StorageUnavailable

    front = FlakyFront(os.environ["AWS_ENDPOINT_URL"], failures=10**6)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", front.url)
        monkeypatch.setattr(s3, "CONNECTION_RETRY_SECONDS", 2.0)
        with pytest.raises(StorageUnavailable) as caught:
            S3Storage(s3_storage.bucket, s3_storage.prefix).get_bytes("k")
        assert "\n" not in str(caught.value) and "keeps failing" in str(caught.value)
        assert "SlowDown" in str(caught.value) and "retried for 2 s" in str(caught.value)
    finally:
        front.close()


def test_a_download_cut_off_mid_body_is_retried_then_succeeds(s3_storage, monkeypatch, tmp_path):
    """A server gone mid-body raised botocore's IncompleteReadError, which was neither retried nor one line: a zoo
    model failed on a short outage the storage layer claims to ride over."""
    payload = os.urandom(3 << 20)
    s3_storage.put_bytes("big", payload)
    server = os.environ["AWS_ENDPOINT_URL"]
    reads = {"get_bytes": lambda storage: storage.get_bytes("big"),
             "download": lambda storage: (storage.download("big", tmp_path / "big"), (tmp_path / "big").read_bytes())[1]}
    for name, read in reads.items():  # a front each: a client keeps its connections open for the next call
        front = FlakyFront(server, failures=2, cut_after=1 << 20)
        try:
            monkeypatch.setenv("AWS_ENDPOINT_URL", front.url)
            assert read(S3Storage(s3_storage.bucket, s3_storage.prefix)) == payload, name
            assert front.failed == 2, name
        finally:
            front.close()


@pytest.mark.parametrize("name, value, words", [
    ("AWS_ENDPOINT_URL", "127.0.0.1:9", "Invalid endpoint"),
    ("AWS_MAX_ATTEMPTS", "three", "three"),
    ("AWS_RETRY_MODE", "fast", "fast"),
])
def test_an_aws_environment_that_cannot_make_a_client_is_one_line(monkeypatch, name, value, words):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv(name, value)
    with pytest.raises(InputError) as caught:
        open_storage("s3://some-bucket/zoo").exists("a.pt")
    message = str(caught.value)
    assert message.startswith("AWS environment: cannot make an S3 client for s3://some-bucket/zoo")
    assert words in message and "\n" not in message


def test_a_key_id_without_its_secret_is_one_line(monkeypatch, tmp_path):
    for variable in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(InputError) as caught:
        open_storage("s3://some-bucket/zoo").exists("a.pt")
    assert "missing: AWS_SECRET_ACCESS_KEY" in str(caught.value) and "\n" not in str(caught.value)
