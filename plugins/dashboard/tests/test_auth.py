"""Password hashes, the users variable, CSRF tokens and throttle keys."""

from __future__ import annotations

from jobq_dashboard.auth import (
    UsersError,
    csrf_ok,
    hash_password,
    new_csrf_token,
    parse_users,
    throttle_key,
    verify_password,
)


def test_hash_is_salted_and_checked():
    a, b = hash_password("pw-1", log2n=10), hash_password("pw-1", log2n=10)
    assert a != b and verify_password("pw-1", a) and verify_password("pw-1", b)
    assert not verify_password("pw-2", a) and not verify_password("x" * 5000, a)
    assert not verify_password("anything", None)  # an unknown user: same work, always refused
    for bad in ("", "x" * 1025):
        try:
            hash_password(bad)
        except ValueError:
            continue
        raise AssertionError(len(bad))


def test_users_errors_name_the_entry_never_the_hash():
    for raw, needle in (("ann:root:scrypt$15$8$1$a$b", "role"), ("ann:admin:plain", "entry 1 (ann)"),
                        ("b@d name:admin:x", "user name")):
        try:
            parse_users(raw)
        except UsersError as exc:
            assert needle in str(exc) and "plain" not in str(exc)
        else:
            raise AssertionError(raw)


def test_csrf_and_throttle_keys():
    token = new_csrf_token()
    assert csrf_ok({"csrf": token}, token) and not csrf_ok({"csrf": token}, token[:-1] + "x")
    assert not csrf_ok({}, token) and not csrf_ok({"csrf": token}, None)
    k = throttle_key("p", "alice", "10.0.0.1")
    assert k.startswith("p:dashboard:login:") and "alice" not in k and "10.0.0.1" not in k
    assert k != throttle_key("p", "alice", "10.0.0.2") != throttle_key("p", "bob", "10.0.0.1")
