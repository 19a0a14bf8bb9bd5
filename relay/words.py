"""What people read, in their own language: gettext catalogs through Babel (CONTRACT section 9).

The catalogs are the committed sources, `relay/locales/<locale>/LC_MESSAGES/messages.po`,
read with Babel's `read_po` the first time a language is asked for (no compile step, so a
fresh clone runs as it is). A message id is the English sentence, with `{name}` fields.

`Words` is one language: its sentences (`_`, `n_`), the labels of response slugs, a care
window and an instant as a person in that language says them. `Lexicon` is every
language the relay speaks, built once per app from RELAY_DEFAULT_LOCALE and
RELAY_RESPONSES_FILE; `Lexicon.words(agent.locale)` is what an agent reads.
"""

from __future__ import annotations

import functools
import gettext
import io
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from relay.labels import BUILT_IN, LOCALES, Responses, ResponseWords, as_words

__all__ = ["DEFAULT_LOCALE", "LOCALES", "Lexicon", "Words", "catalog_path", "english"]

DEFAULT_LOCALE = "en"
#: the catalogs' gettext domain
DOMAIN = "messages"


def catalog_path(locale: str) -> str:
    """Where a language's catalog source lives, inside the package."""
    return f"locales/{locale}/LC_MESSAGES/{DOMAIN}.po"


@functools.cache
def _translations(locale: str) -> gettext.NullTranslations:
    """One language's catalog, read from its .po once per process (static package data)."""
    if locale not in LOCALES:
        return gettext.NullTranslations()
    source = resources.files("relay").joinpath(catalog_path(locale))
    with source.open("rb") as po:
        catalog = read_po(po, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


#: how many durations a language keeps said (a relay says a handful: its windows and holds)
DURATIONS_KEPT = 256


class Words:
    """One language's words: sentences, response labels, durations and instants."""

    def __init__(self, locale: str, responses: Responses | None = None, *, fallback: str = DEFAULT_LOCALE) -> None:
        self.locale = locale if locale in LOCALES else DEFAULT_LOCALE
        self._gettext = _translations(self.locale)
        self._responses = responses or MappingProxyType({})
        self._fallback = fallback
        #: durations already said (Babel's formatting is most of an invitation's wording)
        self._durations: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"Words({self.locale!r})"

    def _(self, message: str, **values: object) -> str:
        """`message` in this language, its `{fields}` filled."""
        text = self._gettext.gettext(message)
        return text.format(**values) if values else text

    def n_(self, singular: str, plural: str, n: int, **values: object) -> str:
        """The form of `singular`/`plural` this language uses for `n` (`{n}` is filled too)."""
        return self._gettext.ngettext(singular, plural, n).format(n=n, **values)

    def _response(self, slug: str) -> ResponseWords | None:
        own = self._responses.get(self.locale, {}).get(slug)
        if own is not None:
            return own
        built_in = BUILT_IN.get(slug)
        if built_in is not None:
            description = self._(built_in.description) if built_in.description else None
            return ResponseWords(self._(built_in.label), description)
        return self._responses.get(self._fallback, {}).get(slug)

    def label(self, slug: str) -> str:
        """What a person reads for a response slug or an outcome: its label, else the slug as words."""
        found = self._response(slug)
        return found.label if found is not None else as_words(slug)

    def description(self, slug: str) -> str | None:
        """The one line that says what a response means, when it has one."""
        found = self._response(slug)
        return found.description if found is not None else None

    def duration(self, minutes: int) -> str:
        """`30 minutes`, `1 hour and 30 minutes`, `2 zile`: exact, in whole units."""
        said = self._durations.get(minutes)
        if said is None:
            said = self._say_duration(minutes)
            if len(self._durations) < DURATIONS_KEPT:
                self._durations[minutes] = said
        return said

    def _say_duration(self, minutes: int) -> str:
        parts = [
            format_timedelta(timedelta(minutes=amount), threshold=1, locale=self.locale)
            for amount in (minutes // 1440 * 1440, minutes % 1440 // 60 * 60, minutes % 60)
            if amount
        ]
        if not parts:
            return format_timedelta(timedelta(minutes=1), locale=self.locale)
        said = parts[-1]
        for part in reversed(parts[:-1]):
            said = self._("{first} and {second}", first=part, second=said)
        return said

    def moment(self, ts: datetime, tz: str | None) -> str:
        """An instant as a person in this language reads it, in their time zone (UTC when unknown)."""
        try:
            zone = ZoneInfo(tz) if tz else UTC
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        for pattern, shown_in in (("EEEE d MMMM y, HH:mm zzzz", zone), ("EEEE d MMMM y, HH:mm 'UTC'", UTC)):
            try:
                return format_datetime(ts, pattern, tzinfo=shown_in, locale=self.locale)
            except (OverflowError, ValueError):  # a sender's ts at the end of the calendar: no zone holds it
                continue
        return ts.isoformat(timespec="minutes")


@functools.cache
def english() -> Words:
    """English with the built-in labels: what a value reads in when nobody chose a language."""
    return Words(DEFAULT_LOCALE)


def _accepted(header: str) -> list[str]:
    """An Accept-Language header's languages, most wanted first ("ro-RO,ro;q=0.9,en;q=0.8")."""
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, n, tag.strip().lower()))
    return [tag for _, _, tag in sorted(ranked)]


class Lexicon:
    """Every language the relay speaks, with the operator's response words; one per app."""

    def __init__(self, default_locale: str = DEFAULT_LOCALE, responses: Responses | None = None) -> None:
        self.default_locale = default_locale if default_locale in LOCALES else DEFAULT_LOCALE
        self._all = {locale: Words(locale, responses, fallback=self.default_locale) for locale in LOCALES}

    def words(self, locale: str | None) -> Words:
        """An agent's words: their locale, else RELAY_DEFAULT_LOCALE."""
        return self._all.get(locale or "", self._all[self.default_locale])

    def choose(self, wanted: Iterable[str | None]) -> Words:
        """The first language asked for that the relay speaks (`ro`, `ro-RO`), else English."""
        for tag in wanted:
            base = (tag or "").strip().lower().replace("_", "-").split("-")[0]
            if base in self._all:
                return self._all[base]
        return self._all[DEFAULT_LOCALE]

    def for_reader(self, lang: str | None, accept_language: str) -> Words:
        """A page for someone outside the directory: `?lang=`, else the browser's languages, else English."""
        return self.choose([lang, *_accepted(accept_language)])

    @property
    def locales(self) -> Mapping[str, Words]:
        return MappingProxyType(self._all)
