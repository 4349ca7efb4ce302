"""Personal confirmation tokens: signed, bound to one occurrence and one person, expiring.

A token is an itsdangerous ``URLSafeTimedSerializer`` string (HMAC-SHA256 with a salt of its
own, so a signature made for anything else with the same key never passes here). Its payload is
``[occurrence_id, person_id]``, optionally with a third element, the token's own expiry (Unix
seconds), for links that must die before the usual lifetime. The issue time is signed in too,
so the lifetime (``Settings.link_ttl_days``) is checked against it when the link is opened.

Whoever holds the token may confirm for that one person and that one occurrence, nothing else:
the person id is inside the signed payload, never taken from the request.
"""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import UTC, datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, Literal

from itsdangerous import BadData, BadSignature, Signer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.timed import TimestampSigner

from storage.ids import row_id

SALT = "remindbot.confirm.v1"
TokenProblem = Literal["forged", "expired", "malformed"]

# Three dot-separated URL-safe base64 parts: payload (a leading dot marks a compressed one),
# timestamp, signature.
_SHAPE = re.compile(r"^\.?[A-Za-z0-9_-]{2,200}\.[A-Za-z0-9_-]{2,16}\.[A-Za-z0-9_-]{20,100}$")


class TokenError(Exception):
    """A token that cannot be used. ``reason`` is one of "forged", "expired", "malformed"."""

    def __init__(self, reason: TokenProblem) -> None:
        super().__init__(f"confirmation token refused: {reason}")
        self.reason: TokenProblem = reason


class _IssuedAtSigner(TimestampSigner):
    """A timestamp signer whose clock can be set, so tests and callers pass ``now``."""

    def __init__(self, *args: Any, issued_at: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._issued_at = issued_at
        self._derived: dict[str | bytes | None, bytes] = {}

    def get_timestamp(self) -> int:
        return self._issued_at if self._issued_at is not None else super().get_timestamp()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        """itsdangerous's key for this salt, hashed once per signer instead of once per signature."""
        derived = self._derived.get(secret_key)
        if derived is None:
            derived = self._derived[secret_key] = super().derive_key(secret_key)
        return derived


PACK_FROM = 64  # bytes of JSON; unpacked, 64 bytes are 86 base64 characters (``_SHAPE`` allows 200)


class _LinkSerializer(URLSafeTimedSerializer):
    """itsdangerous's serializer, except that a payload of at most :data:`PACK_FROM` bytes is never
    zlib-packed: the attempt costs ~50 µs a call (most of signing one link; a fire signs one per person),
    and an id with no repeats never packs shorter anyway. itsdangerous reads either form, so only a
    repetitive id's link comes out a few characters longer."""

    def dump_payload(self, obj: Any) -> bytes:
        raw = _compact_ids(obj) or self.serializer.dumps(obj, **self.serializer_kwargs).encode("utf-8")
        if len(raw) > PACK_FROM:
            return super().dump_payload(obj)
        return base64_encode(raw)

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        """One signer per serializer (itsdangerous makes one per call): a fire signs 20,000 links."""
        if salt is not None and salt != self.salt:
            return super().make_signer(salt)
        signer = self.__dict__.get("_signer")
        if signer is None:
            signer = self.__dict__["_signer"] = super().make_signer()
        return signer


def _compact_ids(payload: Any) -> bytes | None:
    """The compact JSON itsdangerous writes (``ensure_ascii=False``, no spaces) for a list of ints and
    strings, the shape of every link's payload, without a ``json.dumps`` call; None for anything else."""
    if type(payload) is not list:
        return None
    parts = []
    for item in payload:
        if type(item) is int:
            parts.append(str(item))
        elif type(item) is str:
            parts.append(encode_basestring(item))
        else:
            return None
    return f"[{','.join(parts)}]".encode()


@functools.lru_cache(maxsize=64)  # a fire signs one link per person: build the serializer once
def _serializer(key: str, issued_at: int | None = None) -> URLSafeTimedSerializer:
    return _LinkSerializer(
        key,
        salt=SALT,
        signer=_IssuedAtSigner,
        signer_kwargs={"digest_method": hashlib.sha256, "issued_at": issued_at},
    )


def _unix(moment: datetime) -> int:
    if moment.tzinfo is None:  # naive datetimes are UTC throughout the project
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def make_token(
    key: str,
    occurrence_id: int,
    person_id: str,
    *,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> str:
    """Sign a token for one person and one occurrence (issued ``now``, default the system clock)."""
    payload: list[Any] = [int(occurrence_id), str(person_id)]
    if expires_at is not None:
        payload.append(_unix(expires_at))
    issued_at = _unix(now) if now is not None else None
    return str(_serializer(key, issued_at).dumps(payload))


def read_token(
    key: str, token: str, max_age_seconds: float, now: datetime | None = None
) -> tuple[int, str]:
    """Check a token and return ``(occurrence_id, person_id)``, or raise :class:`TokenError`.

    The signature is checked before the age, so an altered token is "forged", never "expired".
    """
    if not isinstance(token, str) or not _SHAPE.match(token):
        raise TokenError("malformed")
    try:
        payload, issued = _serializer(key).loads(token, max_age=None, return_timestamp=True)
    except BadSignature:
        raise TokenError("forged") from None
    except BadData:
        raise TokenError("malformed") from None
    occurrence_id, person_id, own_expiry = _unpack(payload)
    now_ts = _unix(now) if now is not None else _unix(datetime.now(UTC))
    if now_ts - _unix(issued) > max_age_seconds:
        raise TokenError("expired")
    if own_expiry is not None and now_ts >= own_expiry:
        raise TokenError("expired")
    return occurrence_id, person_id


def _unpack(payload: Any) -> tuple[int, str, int | None]:
    """Validate the signed payload's shape (only a bug or an old format could break it)."""
    if not isinstance(payload, list) or len(payload) not in (2, 3):
        raise TokenError("malformed")
    occurrence_id, person_id = payload[0], payload[1]
    own_expiry = payload[2] if len(payload) == 3 else None
    if type(occurrence_id) is not int or not row_id(occurrence_id) or not isinstance(person_id, str) or not person_id:
        raise TokenError("malformed")
    if own_expiry is not None and type(own_expiry) is not int:
        raise TokenError("malformed")
    return occurrence_id, person_id, own_expiry


def confirm_url(base_url: str, token: str) -> str:
    """The personal link: ``<base_url>/c/<token>``."""
    return f"{base_url.rstrip('/')}/c/{token}"


# ---------------------------------------------------------------- read-only view tokens

# Read-only links (a leader's page, calendar feeds, chart images) reuse the signing key and its
# per-database nonce under salts of their own: a view token never confirms, a confirmation token
# never opens a view, and a token for one view (say a unit's feed) never opens another.
VIEW_SALTS = {
    "leader": "remindbot.view.leader.v1",
    "ical-person": "remindbot.view.ical-person.v1",
    "ical-unit": "remindbot.view.ical-unit.v1",
    "chart": "remindbot.view.chart.v1",
}
ViewPurpose = Literal["leader", "ical-person", "ical-unit", "chart"]


def _view_serializer(key: str, purpose: ViewPurpose, issued_at: int | None = None) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        key,
        salt=VIEW_SALTS[purpose],
        signer=_IssuedAtSigner,
        signer_kwargs={"digest_method": hashlib.sha256, "issued_at": issued_at},
    )


def make_view_token(key: str, purpose: ViewPurpose, payload: list[str | int], *, now: datetime | None = None) -> str:
    """Sign a read-only token for ``purpose`` (issued ``now``, default the system clock).

    ``payload`` is a short list of ids (a person, a unit, a reminder and a Unix due time).
    """
    issued_at = _unix(now) if now is not None else None
    return str(_view_serializer(key, purpose, issued_at).dumps(list(payload)))


def read_view_token(key: str, purpose: ViewPurpose, token: str, max_age_seconds: float,
                    now: datetime | None = None) -> list[str | int]:
    """Check a view token and return its payload, or raise :class:`TokenError`.

    A token signed for another purpose (or a confirmation token) fails its signature: "forged".
    """
    if not isinstance(token, str) or not _SHAPE.match(token):
        raise TokenError("malformed")
    try:
        payload, issued = _view_serializer(key, purpose).loads(token, max_age=None, return_timestamp=True)
    except BadSignature:
        raise TokenError("forged") from None
    except BadData:
        raise TokenError("malformed") from None
    if not isinstance(payload, list) or not payload or not all(type(p) in (str, int) for p in payload):
        raise TokenError("malformed")
    now_ts = _unix(now) if now is not None else _unix(datetime.now(UTC))
    if now_ts - _unix(issued) > max_age_seconds:
        raise TokenError("expired")
    return payload


def view_url(base_url: str, purpose: ViewPurpose, token: str) -> str:
    """``/l/<token>`` (leader page), ``/ical/<token>.ics`` (feeds), ``/chart/<token>.png``."""
    base = base_url.rstrip("/")
    if purpose == "leader":
        return f"{base}/l/{token}"
    if purpose == "chart":
        return f"{base}/chart/{token}.png"
    return f"{base}/ical/{token}.ics"
