"""The broker ACL generator (pure): users, ACL text, Mosquitto 2 password hashes, secrets files."""

from __future__ import annotations

import base64

import pytest

from carbonflow.broker_acl import (
    BrokerAclError,
    hash_password,
    parse_secrets,
    plan_users,
    render_acl,
    render_password_file,
    render_secrets,
    verify_password,
)

# Written by `mosquitto_passwd -b -c pw site/dev s3cret` (Mosquitto 2.0.11): the format and the
# PBKDF2-SHA512 digest must match byte for byte for Mosquitto to accept our password file.
MOSQUITTO_PASSWD_LINE = (
    "site/dev:$7$101$j+t2JEUUarIwp55o$2gI33Lv9F++GHDpS6zImOXILF/ky3XkikkoTj0Na8GKk0pDjkGiiYjozsyk"
    "hZxdlSTgi+IFHJwDiK54Brhr/2A=="
)


def test_hash_matches_mosquitto_passwd_output() -> None:
    user, hashed = MOSQUITTO_PASSWD_LINE.split(":", 1)
    salt = base64.b64decode(hashed.split("$")[3])
    assert len(salt) == 12
    assert hash_password("s3cret", salt) == hashed
    assert render_password_file({user: hashed}) == MOSQUITTO_PASSWD_LINE + "\n"
    assert verify_password("s3cret", hashed)
    assert not verify_password("s3cret ", hashed)
    assert not verify_password("s3cret", "$6$plain-crypt")


def test_empty_password_is_refused() -> None:
    with pytest.raises(BrokerAclError):
        hash_password("", b"0" * 12)


def test_each_device_may_write_only_its_own_topic() -> None:
    users = plan_users(
        [("mine", "hoist"), ("mine", "fan"), ("park", "pv-1"), ("mine", "hoist")],
        [("mine", "gw1")],
        publishers=["simulator"],
    )
    by_name = {u.username: u for u in users}
    # 3 distinct devices (one repeated pair), 1 gateway, ingest, 1 publisher = 6 users.
    assert len(users) == 6
    assert by_name["mine/hoist"].write == ("carbonflow/v1/mine/hoist/telemetry",)
    assert by_name["mine/hoist"].read == ()
    assert by_name["mine/gateway/gw1"].write == ("carbonflow/v1/mine/gateway/gw1/telemetry",)
    assert by_name["ingest"].write == ()
    assert by_name["ingest"].read == (
        "carbonflow/v1/#",
        "$share/carbonflow-ingest/carbonflow/v1/#",
    )
    assert by_name["simulator"].write == ("carbonflow/v1/#",)
    acl = render_acl(users)
    # Nothing above the first "user" line: a top-level topic line would apply to anonymous
    # clients and to every user.
    first_user = acl.index("\nuser ")
    assert "topic" not in acl[:first_user]
    block = acl.split("user mine/fan\n", 1)[1].split("\n\n", 1)[0]
    assert block == "topic write carbonflow/v1/mine/fan/telemetry"


def test_plain_subscription_group_and_custom_ingest_user() -> None:
    users = plan_users([("s", "d")], ingest_user="reader", shared_group="")
    assert users[-1].username == "reader"
    assert users[-1].read == ("carbonflow/v1/#",)


def test_gateway_of_unknown_site_and_bad_names_are_refused() -> None:
    with pytest.raises(BrokerAclError, match="site 'other'"):
        plan_users([("mine", "hoist")], [("other", "gw1")])
    with pytest.raises(BrokerAclError, match="more than once"):
        plan_users([("mine", "hoist")], publishers=["ingest"])
    with pytest.raises(BrokerAclError, match="may not contain"):
        plan_users([("mine", "hoist")], ingest_user="in#gest")


def test_secrets_round_trip_and_errors() -> None:
    passwords = {"mine/hoist": "a:b:c", "ingest": "xyz"}
    assert parse_secrets(render_secrets(passwords)) == passwords  # ':' inside a password is kept
    with pytest.raises(BrokerAclError, match="f:2"):
        parse_secrets("# comment\nno-separator\n", "f")
    with pytest.raises(BrokerAclError, match="given twice"):
        parse_secrets("u:1\nu:2\n")
