"""Storage through fsspec: a local folder and S3 (moto's server on loopback)."""

import os

import pytest
from jobq.storage import Storage, UnsafeKey, safe_key


@pytest.mark.parametrize("bad", ["../x", "..", "a/b", "", ".hidden", "a\x00b", "x" * 200, "\uff0e\uff0e", "%2e%2e",
                                 "ok\n"])
def test_unsafe_ids_refused(bad):
    with pytest.raises(UnsafeKey):
        safe_key("reports", bad)


def test_local_put_is_atomic_and_overwrites(tmp_path):
    st = Storage(str(tmp_path / "root"), public_url="https://cdn.test/m")
    key = safe_key("p1", "r1", "a.bin")
    st.put(key, b"one")
    st.put(key, b"two")
    assert st.get(key) == b"two" and st.size(key) == 3 and st.exists(key)
    assert st.list("p1") == ["p1/r1/a.bin"]
    assert not [n for n in os.listdir(tmp_path / "root" / "p1" / "r1") if n.startswith(".tmp-")]
    assert st.url(key) == "https://cdn.test/m/p1/r1/a.bin"
    with pytest.raises(UnsafeKey):
        st.put("p1/../../etc/passwd", b"x")
    st.delete("p1")
    assert not st.exists(key)


def test_s3_put_get_url(jobq_s3):
    import boto3

    url = jobq_s3.make_bucket("core-bucket")
    st = Storage(f"{url}/tenant")
    key = safe_key("p", "r", "thumb.webp")
    st.put(key, b"RIFF....WEBP", content_type="image/webp")
    assert st.get(key) == b"RIFF....WEBP" and st.list("p") == ["p/r/thumb.webp"]
    head = boto3.client("s3").head_object(Bucket="core-bucket", Key="tenant/p/r/thumb.webp")
    assert head["ContentType"] == "image/webp"
    assert st.url(key) == "s3://core-bucket/tenant/p/r/thumb.webp"
