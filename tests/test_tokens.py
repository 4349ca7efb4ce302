"""Personal confirmation tokens: bound to one occurrence and one person, signed, expiring."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.confirming.tokens import TokenError, confirm_url, make_token, read_token

KEY = "server-signing-key"
ISSUED = datetime(2025, 3, 7, 1, 0, tzinfo=UTC)
FOURTEEN_DAYS = 14 * 86400


def reason(token: str, *, key: str = KEY, now: datetime = ISSUED, max_age: float = FOURTEEN_DAYS) -> str:
    with pytest.raises(TokenError) as caught:
        read_token(key, token, max_age, now=now)
    return caught.value.reason


def test_a_token_reads_back_as_its_occurrence_and_person() -> None:
    token = make_token(KEY, 42, "zhang.san", now=ISSUED)
    assert read_token(KEY, token, FOURTEEN_DAYS, now=ISSUED + timedelta(days=3)) == (42, "zhang.san")


def test_a_token_is_short_enough_for_a_chat_message() -> None:
    assert len(make_token(KEY, 1234, "zhang.wei", now=ISSUED)) <= 80
    assert len(make_token(KEY, 123456, "secretary-of-branch-12", now=ISSUED)) <= 100


def test_a_token_is_url_safe_and_the_link_ends_with_it() -> None:
    token = make_token(KEY, 1, "li", now=ISSUED)
    assert all(c.isalnum() or c in "-_." for c in token)
    assert confirm_url("https://dangjian.example.gov.cn/", token) == f"https://dangjian.example.gov.cn/c/{token}"


def test_a_token_signed_with_another_key_is_forged() -> None:
    assert reason(make_token("someone-elses-key", 42, "zhang", now=ISSUED)) == "forged"


def test_changing_the_person_inside_a_token_breaks_its_signature() -> None:
    _, stamp, signature = make_token(KEY, 42, "zhang", now=ISSUED).split(".")
    other = base64.urlsafe_b64encode(json.dumps([42, "li"], separators=(",", ":")).encode())
    assert reason(f"{other.decode().rstrip('=')}.{stamp}.{signature}") == "forged"


def test_changing_the_issue_time_to_extend_a_token_breaks_its_signature() -> None:
    old = make_token(KEY, 42, "zhang", now=ISSUED)
    fresh = make_token(KEY, 1, "x", now=ISSUED + timedelta(days=30))
    payload, _, signature = old.split(".")
    assert reason(f"{payload}.{fresh.split('.')[1]}.{signature}",
                  now=ISSUED + timedelta(days=31)) == "forged"


def test_a_token_older_than_its_lifetime_is_expired() -> None:
    token = make_token(KEY, 42, "zhang", now=ISSUED)
    assert read_token(KEY, token, FOURTEEN_DAYS, now=ISSUED + timedelta(days=14)) == (42, "zhang")
    assert reason(token, now=ISSUED + timedelta(days=14, seconds=1)) == "expired"


def test_a_token_with_its_own_expiry_dies_at_that_time() -> None:
    token = make_token(KEY, 42, "zhang", expires_at=ISSUED + timedelta(hours=1), now=ISSUED)
    assert read_token(KEY, token, FOURTEEN_DAYS, now=ISSUED + timedelta(minutes=59)) == (42, "zhang")
    assert reason(token, now=ISSUED + timedelta(hours=1)) == "expired"


def test_an_expired_token_with_a_bad_signature_is_forged_not_expired() -> None:
    token = make_token("someone-elses-key", 42, "zhang", now=ISSUED)
    assert reason(token, now=ISSUED + timedelta(days=100)) == "forged"


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c.d", "é.é.é", "x" * 500, "../../etc/passwd"])
def test_garbage_is_malformed(garbage: str) -> None:
    assert reason(garbage) == "malformed"


def test_the_error_message_never_contains_the_key() -> None:
    with pytest.raises(TokenError) as caught:
        read_token(KEY, make_token("other", 1, "x", now=ISSUED), FOURTEEN_DAYS, now=ISSUED)
    assert KEY not in str(caught.value)


def test_links_are_the_links_itsdangerous_signs() -> None:
    """A fire signs 20,000 links with one cached serializer that skips zlib for short payloads; the links
    are the same strings, so a link sent before this change and one sent after read alike."""
    from itsdangerous import URLSafeTimedSerializer
    from itsdangerous.timed import TimestampSigner

    class At(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(ISSUED.timestamp())

    reference = URLSafeTimedSerializer(KEY, salt="remindbot.confirm.v1", signer=At,
                                       signer_kwargs={"digest_method": __import__("hashlib").sha256})
    until = ISSUED + timedelta(days=2)
    people = [(1, "li"), (42, "zhang.san"), (987654321, "secretary-of-branch-12"), (7, "张三"), (3, 'q"uo\\te')]
    for occurrence, person in people:
        assert make_token(KEY, occurrence, person, now=ISSUED) == reference.dumps([occurrence, person])
        expiring = make_token(KEY, occurrence, person, now=ISSUED, expires_at=until)
        assert expiring == reference.dumps([occurrence, person, int(until.timestamp())])


def test_a_long_repetitive_person_id_still_makes_a_link_that_opens() -> None:
    person = "a" * 60 + "-" + "b" * 40  # unpacked above 64 bytes of payload: compressed as before
    token = make_token(KEY, 5, person, now=ISSUED)
    assert token.startswith(".")  # the packed form
    assert read_token(KEY, token, FOURTEEN_DAYS, now=ISSUED) == (5, person)
    short = make_token(KEY, 5, "a" * 20, now=ISSUED)  # short payloads are never packed (zlib costs ~50 µs)
    assert not short.startswith(".") and read_token(KEY, short, FOURTEEN_DAYS, now=ISSUED) == (5, "a" * 20)
