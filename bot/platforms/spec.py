"""What each platform folder declares about itself, for the registry to collect.

Each folder under ``bot/platforms/`` has a ``spec.py`` whose ``SPEC`` is a :class:`PlatformSpec`:
its robot, its config models, its app sender and its callback handler, and, for each value of
``platform:`` it serves (:class:`Edition`: Feishu's folder serves ``feishu`` and ``lark``), the words
an admin sees, the ``people[].ids`` key's description, the spreadsheet headers and the robot hosts.
:mod:`bot.platforms.registry` lists the folders (an import and a ``SPECS`` entry each) and derives every
table from them.

A callback handler has one signature, :data:`Callback`: ``(inbox, app, request) -> reply``. It
verifies the request (raising :class:`~bot.platforms.events.CallbackError` for a refusal, with the
HTTP status and a Chinese message), hands events to ``inbox.handle`` (where the confirmation rules
live) and says what the HTTP response is. The web side (:mod:`bot.web.callbacks`) implements
:class:`Inbox`, so platform modules never import the web app, the runtime or the rules.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import aiohttp

    from bot.platforms.apps import AppBase
    from bot.platforms.appsend import AppSender
    from bot.platforms.base import ChannelBase, Platform
    from bot.platforms.events import Answer, Pressed, Said


@dataclass(frozen=True)
class CallbackRequest:
    """An HTTP request to ``/callback/<platform>/<app_id>``; ``body`` is bounded (empty for a GET)."""

    method: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class CallbackReply:
    """The HTTP response: ``json`` (when not None) as a JSON body, else ``text`` of ``content_type``."""

    text: str = ""
    json: Any = None
    content_type: str = "text/plain"
    status: int = 200


@dataclass(frozen=True)
class CardState:
    """Who has confirmed an occurrence, for a card that shows it (``when``: Chinese, the reminder's zone)."""

    occurrence_id: int
    title: str
    when: str
    confirmed: list[str]
    outstanding: int


class Inbox(Protocol):
    """What a platform's callback handler may use, given by the web side."""

    http: aiohttp.ClientSession  # for answers posted back (session webhooks, response URLs)

    def now(self) -> datetime: ...

    async def handle(self, event: Said | Pressed) -> Answer:
        """Apply the confirmation rules to a verified event (:func:`bot.confirming.inbound.handle`)."""
        ...

    async def answer_in_channel(self, app: AppBase, event: Said | Pressed, answer: Answer) -> bool:
        """Queue ``answer`` as a direct message, else to the app's ``answer_channel``."""
        ...

    async def card_state(self, occurrence_id: int) -> CardState | None:
        """The occurrence's confirmations for an updated card, None when it is gone."""
        ...


Callback = Callable[["Inbox", Any, CallbackRequest], Awaitable[CallbackReply]]


@dataclass(frozen=True)
class Edition:
    """One value of ``platform:`` (``channels[]``, ``apps[]``) and key of ``people[].ids``.

    ``title``: the Chinese word in messages (企业微信); ``app_title``: the name ``remindbot apps
    check`` shows for its apps (default ``title``); ``id_description``: the ``people[].ids.<name>``
    field's description in the JSON schema (None: people have no id there); ``sheet_headers``: the
    spreadsheet column headers for that id (case-insensitive, the first Chinese one in templates);
    ``robot_hosts``: the hosts its group robots' webhooks live on (another platform's host is a
    copy-paste mistake).
    """

    name: str
    title: str
    id_description: str | None = None
    sheet_headers: tuple[str, ...] = ()
    robot_hosts: tuple[str, ...] = ()
    app_title: str | None = None

    @property
    def shown_in_apps(self) -> str:
        return self.app_title or self.title


@dataclass(frozen=True)
class PlatformSpec:
    """One platform folder: its editions, robot adapter and channel model, and, when it has an app,
    the ``apps:`` model, the direct-message sender and the callback handler."""

    editions: tuple[Edition, ...]
    robot: Platform
    channel_model: type[ChannelBase]
    app_model: type[AppBase] | None = None
    app_sender: AppSender | None = None
    callback: Callback | None = None
    callback_methods: tuple[str, ...] = ("POST",)  # what the platform sends; others get a 405 before the handler

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.editions)


def lazy_callback(module: str) -> Callback:
    """The ``callback`` of ``module`` (a platform's ``inbound``), imported when the first request
    arrives: loading the config (the registry) must not load the platforms' crypto and SDKs."""

    async def callback(inbox: Inbox, app: Any, request: CallbackRequest) -> CallbackReply:
        handler: Callback = importlib.import_module(module).callback
        return await handler(inbox, app, request)

    callback.__qualname__ = f"{module}.callback"
    return callback
