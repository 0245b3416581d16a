#!/usr/bin/env python3
"""Write docs/events.md, the catalogue of every event type, from the code that declares them.

    python scripts/event_catalogue.py           # (re)write docs/events.md
    python scripts/event_catalogue.py --check   # exit 1 when docs/events.md differs from the code

Where it looks (nothing here is typed again):

* the services: the ``upgestao.services`` entry points (``upgestao_kernel.service_registry``);
* the events: every :class:`~upgestao_kernel.events.DomainEvent` declared in a service's
  ``domain`` package -- type, producer, stored fields, published view, secret;
* the read models: the ``EventHandlers`` tables of each service's projections;
* the consumers: every ``reliable_handler`` on a service class, and every
  :class:`~upgestao_kernel.events.Subscription` in a module the service loads (a stream or a
  queue of its own, bound to another service's events).

A subscription or handler naming a type no service declares is an error: a consumer waiting for
an event nobody sends is a typo the catalogue catches.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import pkgutil
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import upgestao_kernel.green  # noqa: F401,I001  (first: eventlet monkey-patching, as nameko needs it)
from upgestao_kernel.cli import ServiceDefinition
from upgestao_kernel.events import DomainEvent, EventHandlers, Subscription, declared_events
from upgestao_kernel.nameko_ext.entrypoints import ReliableEventHandler
from upgestao_kernel.service_registry import service_definitions, service_package

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "docs" / "events.md"
SKIPPED_MODULES = ("migrations", "__main__")  # running them is not loading them


@dataclass(frozen=True)
class Consumer:
    service: str
    handler: str
    via: str

    def __str__(self) -> str:
        return f"{self.service}: `{self.handler}` ({self.via})"


@dataclass
class Entry:
    event: type[DomainEvent]
    producer: str
    read_models: list[str] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)


class CatalogueError(Exception):
    """The code contradicts itself (a consumer of an undeclared type, an event under another service's name)."""


# -- collecting ------------------------------------------------------------------------------------


def _import_tree(package: str) -> None:
    """Import ``package`` and every module under it (but migrations and ``__main__``)."""
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=package + "."):
        if not any(part in SKIPPED_MODULES for part in info.name.split(".")):
            importlib.import_module(info.name)


def _declared_in(package: str) -> list[type[DomainEvent]]:
    return [cls for cls in declared_events().values() if cls.__module__.split(".")[0] == package]


def _topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return match(p[1:], k) or (bool(k) and match(p, k[1:]))
        return bool(k) and p[0] in ("*", k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), routing_key.split("."))


def _reliable_handlers(name: str, definition: ServiceDefinition) -> Iterable[tuple[Consumer, list[str]]]:
    cls = definition.load_class()
    for attr in sorted(dir(cls)):
        for entrypoint in getattr(getattr(cls, attr, None), "nameko_entrypoints", ()):
            if isinstance(entrypoint, ReliableEventHandler):
                patterns = [f"{entrypoint.source_service}.events:{p}" for p in entrypoint.event_types]
                yield Consumer(name, f"{cls.__name__}.{attr}", f"queue `{name}.{attr}`"), patterns


def _subscriptions(package: str) -> Iterable[Subscription]:
    seen: set[int] = set()
    for module_name, module in sorted(sys.modules.items()):
        if module is None or module_name.split(".")[0] != package:
            continue
        for value in vars(module).values():
            if isinstance(value, Subscription) and id(value) not in seen:
                seen.add(id(value))
                yield value


# Consumers that bind to events without declaring a Subscription yet: (service, module, handler).
# Each is read from the module's own constants (QUEUE, EVENT_TYPES), never retyped here, and is
# skipped once the module declares a Subscription (then delete its line).
UNDECLARED_STREAMS = (("gateway", "upgestao_gateway.access.stream", "AccessEventsStream"),)


def _undeclared(name: str, declared: list[Subscription]) -> Iterable[Subscription]:
    for service, module_name, handler in UNDECLARED_STREAMS:
        if service != name or any(s.handler == handler for s in declared):
            continue
        try:
            module = importlib.import_module(module_name)
            yield Subscription(service=service, handler=handler, events=tuple(module.EVENT_TYPES),
                               via=f"stream `{module.QUEUE}`")
        except (ImportError, AttributeError) as exc:
            raise CatalogueError(f"{module_name} moved or changed ({exc}): declare its Subscription "
                                 "(upgestao_kernel.events) beside its wiring instead") from None


def collect(definitions: Mapping[str, ServiceDefinition] | None = None) -> dict[str, Entry]:
    """Every declared event type (sorted) with its producer, read models and consumers."""
    definitions = service_definitions() if definitions is None else definitions
    entries: dict[str, Entry] = {}
    for name, definition in definitions.items():
        package = service_package(definition)
        if importlib.util.find_spec(f"{package}.domain") is not None:
            _import_tree(f"{package}.domain")
        for event in _declared_in(package):
            if event.service != name:
                raise CatalogueError(f"{event.__module__}.{event.__qualname__} is declared in {name} under "
                                     f"the name of {event.service!r}: {event.type}")
            entries[event.type] = Entry(event, producer=name)
    entries = dict(sorted(entries.items()))

    def consumed(consumer: Consumer, types: Iterable[str], matches=lambda pattern, t: pattern == t) -> None:
        for wanted in types:
            found = [t for t in entries if matches(wanted, t)]
            if not found:
                raise CatalogueError(f"{consumer} consumes {wanted}, which no service declares")
            for event_type in found:
                entries[event_type].consumers.append(consumer)

    for name, definition in definitions.items():
        package = service_package(definition)
        for projection in definition.projections():
            for table in vars(type(projection)).values():
                if isinstance(table, EventHandlers):
                    for event_type in table.event_types:
                        if event_type not in entries:
                            raise CatalogueError(f"{name}'s projection {projection.name} handles {event_type}, "
                                                 "which no service declares")
                        entries[event_type].read_models.append(f"{name}: `{projection.name}`")
        for consumer, patterns in _reliable_handlers(name, definition):
            def on_exchange(pattern: str, event_type: str) -> bool:
                exchange, _, key = pattern.partition(":")
                return exchange == f"{entries[event_type].producer}.events" and _topic_matches(key, event_type)

            consumed(consumer, patterns, on_exchange)
        declared = list(_subscriptions(package))
        for subscription in declared + list(_undeclared(name, declared)):
            if subscription.service != name:
                raise CatalogueError(f"{subscription} is declared in {package} for {subscription.service}")
            consumed(Consumer(name, subscription.handler, subscription.via), subscription.events)
    return entries


# -- rendering -------------------------------------------------------------------------------------


def _doc(obj: object) -> str:
    return " ".join((obj.__doc__ or "").split())


def _published(event: type[DomainEvent]) -> str:
    if event.publishes is False:
        return "no (kept in the service)"
    where = f"`{event.service}.events`"
    return f"yes, secret: wiped from the outbox once delivered ({where})" if event.secret else f"yes ({where})"


def _field_rows(event: type[DomainEvent]) -> list[tuple[str, str, str, str]]:
    """(name, type, stored, published) for every stored or published member, stored ones first."""
    by_name = {f.name: f for f in dataclasses.fields(event)}
    stored, published = event.stored_names(), event.published_names()
    rows = []
    for name in stored:
        kind = str(by_name[name].type)
        shown = "names only" if name in published and kind.startswith(("Mapping", "dict")) else "yes"
        rows.append((name, kind, "yes", shown if name in published else "no"))
    for name in published:
        if name in stored:
            continue
        if name == event.subject:
            rows.append((name, "str", "no", "yes: the id of the stream's aggregate"))
        elif name in by_name:
            rows.append((name, str(by_name[name].type), "no", "yes: published only, never stored"))
        else:
            rows.append((name, "-", "no", f"yes: {_doc(getattr(event, name))}"))
    return rows


def render(entries: Mapping[str, Entry]) -> str:
    lines = [
        "# Events",
        "",
        "<!-- Generated by scripts/event_catalogue.py from the event declarations (DomainEvent",
        "     subclasses in each service's domain), its projections and its consumers. Do not edit:",
        "     run `python scripts/event_catalogue.py`; `--check` (run by tests/test_event_catalogue.py)",
        "     fails when this file and the code differ. -->",
        "",
        "Every event type of the platform: who produces it, who reads it, whether it leaves its",
        "service, and what it holds. A published event goes through its producer's outbox to the",
        "topic exchange `<producer>.events` with the type as routing key; stored fields are what the",
        "event log keeps (personal values as vault ciphertext), published fields what consumers get",
        "(ids and field names, never personal values). Audit records are not events: every service",
        "sends them to the `audit` exchange, where privacy's ingest reads them (see",
        "docs/architecture.md); a message there is one record, or a batch `{\"records\": [...]}`",
        "of the records of one action written together (a page of reads), each still its own record.",
        "",
        "| event type | producer | published | consumers | read models |",
        "|---|---|---|---|---|",
    ]
    for event_type, entry in entries.items():
        consumers = "<br>".join(str(c) for c in entry.consumers) or "none yet"
        read_models = ", ".join(entry.read_models) or "-"
        published = "secret" if entry.event.secret else ("yes" if entry.event.publishes is not False else "no")
        lines.append(f"| [`{event_type}`](#{_anchor(event_type)}) | {entry.producer} | {published} | {consumers} "
                     f"| {read_models} |")
    for event_type, entry in entries.items():
        event = entry.event
        lines += [
            "",
            f"## {event_type}",
            "",
            _doc(event),
            "",
            f"- producer: {entry.producer} (`{event.__module__}.{event.__qualname__}`)",
            f"- published: {_published(event)}",
            f"- consumers: {'; '.join(str(c) for c in entry.consumers) or 'none yet'}",
            f"- read models: {', '.join(entry.read_models) or 'none'}",
            "",
        ]
        rows = _field_rows(event)
        if rows:
            lines += ["| field | type | stored | published |", "|---|---|---|---|"]
            lines += [f"| `{name}` | `{_cell(kind)}` | {stored} | {_cell(published)} |"
                      for name, kind, stored, published in rows]
        else:
            lines.append("No fields.")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """A table cell: a pipe (``str | None``) would end it, even inside backticks."""
    return text.replace("|", "\\|")


def _anchor(event_type: str) -> str:
    """GitHub's heading anchor: lower case, dots dropped."""
    return re.sub(r"[^a-z0-9_ -]", "", event_type.lower()).replace(" ", "-")


# -- command ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None, path: Path = CATALOGUE) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from the code")
    args = parser.parse_args(argv)
    try:
        text = render(collect())
    except CatalogueError as exc:
        print(f"event catalogue: {exc}", file=sys.stderr)
        return 2
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if args.check:
        if current == text:
            return 0
        diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(path), "from the code", lineterm="")
        print("\n".join(diff), file=sys.stderr)
        print(f"{path} is out of date: run `python scripts/event_catalogue.py`", file=sys.stderr)
        return 1
    if current != text:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path} ({len(entries_of(text))} event types)")
    return 0


def entries_of(text: str) -> list[str]:
    return [line[3:] for line in text.splitlines() if line.startswith("## ")]


if __name__ == "__main__":
    sys.exit(main())
