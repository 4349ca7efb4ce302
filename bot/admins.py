"""Admin accounts: several named admins with argon2 password hashes, or the single plain one.

``REMINDBOT_ADMINS`` lists ``name:hash`` pairs separated by commas, semicolons or new lines
(an argon2 hash holds commas itself, so a new entry is recognised by ``name:$``); each hash comes
from ``remindbot admin hash-password``. ``REMINDBOT_ADMIN_USER``/``REMINDBOT_ADMIN_PASSWORD``
still give one admin (the password in clear in the environment, compared in constant time).
The name is what audit rows and confirmations recorded on someone's behalf carry.

A password is never stored, logged or shown: after one successful argon2 check, a keyed digest
of it (key random per process) is kept in memory so the Basic credentials a browser sends with
every request do not cost an argon2 check each time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD = 12  # characters, as for REMINDBOT_ADMIN_PASSWORD
NAME = re.compile(r"[^\s:,;$]{1,64}")
_ENTRY_START = re.compile(r"[,;\n]\s*(?=[^\s:,;$]+:\$)")

_hasher = PasswordHasher()
# Checked against when the name is unknown, so timing does not tell names apart: a hash made once
# with PasswordHasher()'s parameters (m=64 MiB, t=3, p=4) of a random password nobody kept. It is a
# literal so that importing this module (every `serve` start checks REMINDBOT_ADMINS) costs no
# argon2 run (0.1-0.7 s of CPU and 64 MiB); knowing its password would not log anyone in anyway.
_DUMMY = "$argon2id$v=19$m=65536,t=3,p=4$pNNCtf9fXSYh1fFAHCoOmw$DlHh5BLN6cyNxD6QszChn6EW5R2vjAbtKXl9y4rLYwo"


class AdminConfigError(ValueError):
    """REMINDBOT_ADMINS cannot be read; the message is Chinese and never holds a hash. ``why``: what is
    wrong with its value, without the variable's name (``settings_problem`` words the variable itself)."""

    def __init__(self, why: str, *, among: bool = True) -> None:
        # among: "REMINDBOT_ADMINS 中 …" (an entry of it); else "REMINDBOT_ADMINS 第 N 项…"
        super().__init__(f"REMINDBOT_ADMINS {'中' if among else ''}{why}")
        self.why = why


def hash_password(password: str) -> str:
    """An argon2id hash for REMINDBOT_ADMINS. Raises ValueError (Chinese) when too short."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"密码至少需要 {MIN_PASSWORD} 个字符（现在 {len(password)} 个）")
    return _hasher.hash(password)


def parse_admins(text: str) -> dict[str, str]:
    """``{name: hash}`` from REMINDBOT_ADMINS; :class:`AdminConfigError` names the bad entry."""
    admins: dict[str, str] = {}
    for number, entry in enumerate((e.strip() for e in _ENTRY_START.split(text.strip())), start=1):
        if not entry:
            continue
        name, sep, hashed = entry.partition(":")
        name = name.strip()
        if not sep or not NAME.fullmatch(name):
            raise AdminConfigError(f"第 {number} 项应写成 名字:密码哈希（名字不含空格、冒号、逗号；"
                                   "哈希用 remindbot admin hash-password 生成）", among=False)
        if not hashed.strip().startswith("$argon2"):
            raise AdminConfigError(f" {name} 的密码不是 argon2 哈希：请用 "
                                   "remindbot admin hash-password 生成，切勿填写明文密码")
        if name in admins:
            raise AdminConfigError(f"管理员 {name} 出现了两次")
        admins[name] = hashed.strip()
    return admins


@dataclass
class Accounts:
    """The configured admins; ``check(name, password)`` is the one login check."""

    hashes: dict[str, str] = field(default_factory=dict)
    plain: tuple[str, str] | None = None  # REMINDBOT_ADMIN_USER / _PASSWORD
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _known: dict[str, bytes] = field(default_factory=dict)  # name -> keyed digest of name, hash, password

    @property
    def enabled(self) -> bool:
        return bool(self.hashes or self.plain)

    def names(self) -> list[str]:
        return [*self.hashes, *([self.plain[0]] if self.plain else [])]

    def check(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s. Unknown names cost as much as known ones."""
        if self.plain is not None and name not in self.hashes:
            # Both parts compared always, so timing tells nothing about which one was wrong.
            name_ok = hmac.compare_digest(name.encode(), self.plain[0].encode())
            password_ok = hmac.compare_digest(password.encode(), self.plain[1].encode())
            if name_ok:
                return password_ok
        hashed = self.hashes.get(name)
        digest = hmac.new(self._key, f"{name}\0{hashed}\0{password}".encode(), hashlib.sha256).digest()
        if hashed is not None and hmac.compare_digest(self._known.get(name, b""), digest):
            return True
        try:
            ok = _hasher.verify(hashed or _DUMMY, password) and hashed is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if ok:
            self._known[name] = digest
        return ok


def accounts_from(admins: str, user: str, password: str) -> Accounts:
    """The accounts the settings give (raises :class:`AdminConfigError` for a bad REMINDBOT_ADMINS)."""
    plain = (user, password) if user and password else None
    return Accounts(hashes=parse_admins(admins), plain=plain)
