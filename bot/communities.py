"""Per-community settings: a server's or workspace's own thresholds, crisis message, extra
instructions and words (texts), stored in the database, overriding the process-wide
settings for that community's conversations only."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from bot.policy import Rules
from bot.texts import problem


class BadCommunitySettings(ValueError):
    """The values would break the ladder (e.g. ending before warning)."""


class UnknownSetting(ValueError):
    """No community setting has the name given."""


@dataclass(frozen=True, slots=True)
class CommunitySettings:
    """A community's overrides; None keeps the process-wide value."""

    redirects_before_warning: int | None = None
    redirects_before_end: int | None = None
    crisis_message: str | None = None
    system_prompt_extra: str | None = None
    enforcement: str | None = None  # "end", or "alert": alert-only mode (see ENFORCEMENTS)
    # Which of the process's enabled user tools this community's model may call.
    tools: tuple[str, ...] | None = None
    # Its own words for some texts (`bot.texts`: key -> template), over the operator's.
    texts: dict[str, str] | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def from_json(cls, text: str) -> CommunitySettings:
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in data.items() if k in known}
        if given.get("tools") is not None:
            given["tools"] = tuple(given["tools"])
        return cls(**given)

    def merged(self, changes: CommunitySettings) -> CommunitySettings:
        """These settings with every value `changes` sets replaced; texts one by one."""
        given = {f.name: getattr(changes, f.name) for f in fields(changes)}
        if changes.texts is not None:
            given["texts"] = {**(self.texts or {}), **changes.texts} or None
        return replace(self, **{k: v for k, v in given.items() if v is not None})

    def cleared(self, name: str | None = None) -> CommunitySettings:
        """These settings with `name` back to the process-wide value; without a name, all.

        Raises UnknownSetting for a name that is no setting's.
        """
        if name is None:
            return CommunitySettings()
        if name.startswith(TEXT_PREFIX) and name[len(TEXT_PREFIX) :] in (self.texts or {}):
            kept = {k: v for k, v in (self.texts or {}).items() if k != name[len(TEXT_PREFIX) :]}
            return replace(self, texts=kept or None)
        if name not in SETTING_NAMES:
            raise UnknownSetting(
                f"There is no setting {name!r}. The settings are: {', '.join(SETTING_NAMES)}."
            )
        return replace(self, **{name: None})

    def rules(self, defaults: Rules) -> Rules:
        """The ladder's thresholds for this community."""
        return Rules(
            self.redirects_before_warning or defaults.redirects_before_warning,
            self.redirects_before_end or defaults.redirects_before_end,
            defaults.alert_only if self.enforcement is None else self.enforcement == ALERT,
        )

    def check(self, defaults: Rules) -> None:
        """Raise BadCommunitySettings unless the ladder still warns before it can end."""
        for name in ("redirects_before_warning", "redirects_before_end"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BadCommunitySettings(f"{name} must be at least 1")
        if self.crisis_message is not None and not self.crisis_message.strip():
            raise BadCommunitySettings("crisis_message cannot be empty")
        if self.enforcement is not None and self.enforcement not in ENFORCEMENTS:
            raise BadCommunitySettings(
                f"enforcement is {' or '.join(ENFORCEMENTS)} (alert: alert the moderators "
                "where I would end, and end nothing)"
            )
        for key, template in (self.texts or {}).items():
            found = problem(key, template)
            if found:
                raise BadCommunitySettings(f"texts: {found}")
        rules = self.rules(defaults)
        if rules.redirects_before_end < rules.redirects_before_warning:
            raise BadCommunitySettings(
                f"redirects_before_end ({rules.redirects_before_end}) must be at least "
                f"redirects_before_warning ({rules.redirects_before_warning})"
            )


SETTING_NAMES = tuple(f.name for f in fields(CommunitySettings))
ALERT = "alert"
ENFORCEMENTS = ("end", ALERT)
# What a moderator names to reset every setting at once, on any platform.
EVERY_SETTING = "all"
# `texts.KEY` names one of a community's own texts, to reset it alone.
TEXT_PREFIX = "texts."
