"""How the operator's commands name a person or a community: `platform:id`, one form
everywhere. The platform's name is read in any case (`Slack:` is `slack:`); the id is kept
exactly as the platform writes it."""

from __future__ import annotations

from collections.abc import Collection, Iterable

COMMUNITY, COMMUNITY_EXAMPLE = "PLATFORM:COMMUNITY_ID", "discord:123456789 or slack:T0123"


class BadId(ValueError):
    """Not `platform:id` with an installed platform, or a bare id whose platform is unclear."""


def split_id(value: str, platforms: Collection[str], *, form: str, example: str) -> tuple[str, str]:
    """`Slack:U0123` -> ("slack", "U0123"); `platforms` are the names that exist, `form`
    and `example` show how to write one."""
    platform, sep, rest = value.strip().partition(":")
    name, rest = platform.strip().lower(), rest.strip()
    if not sep or not name or not rest:
        raise BadId(f"{value!r} is not {form} (e.g. {example})")
    if name not in platforms:
        known = ", ".join(sorted(platforms)) or "none"
        raise BadId(f"{value!r}: there is no platform {platform!r} (installed: {known})")
    return name, rest


def community_id(
    value: str, platforms: Collection[str], known: Iterable[tuple[str, str]]
) -> tuple[str, str]:
    """A community as `platform:id`, or its bare id when exactly one platform has a
    community of that id with settings of its own (`known`: (platform, id) pairs)."""
    if ":" in value:
        return split_id(value, platforms, form=COMMUNITY, example=COMMUNITY_EXAMPLE)
    bare = value.strip()
    found = sorted({platform for platform, community in known if community == bare})
    if len(found) == 1:
        return found[0], bare
    choices = " or ".join(f"{platform}:{bare}" for platform in (found or sorted(platforms)))
    why = "is on several platforms" if found else "names no platform"
    raise BadId(f"{value!r} {why}: write {choices}")
