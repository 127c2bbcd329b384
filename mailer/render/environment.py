"""The Jinja2 environment for the office's templates, and turning template failures into
one-line ``TemplateError``s that name the template, the line and the cause.

Templates are edited by press staff, so they run sandboxed (no attribute starting with ``_``,
no mutation of the data they are given), HTML templates autoescape everything, and an
undefined name is an error rather than an empty string (``StrictUndefined``).
"""

from __future__ import annotations

import functools
import re
import traceback
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailer.errors import InvalidInput, TemplateError
from mailer.settings import Settings

#: Campaign and system templates the product uses; each has ``.html`` and ``.txt``.
CAMPAIGN_TEMPLATES = ("press_release", "digest")
SYSTEM_TEMPLATES = ("confirm_subscription", "welcome", "already_subscribed")
#: ``already_subscribed`` is optional: the sign-up flow falls back to ``welcome``.
REQUIRED_TEMPLATES = CAMPAIGN_TEMPLATES + ("confirm_subscription", "welcome")
PARTS = ("html", "txt")


def template_kind(name: str) -> str:
    """What a template renders, hence the values it receives: ``system`` (one person),
    ``digest`` (names starting with "digest": several releases) or ``release``."""
    if name in SYSTEM_TEMPLATES:
        return "system"
    if name.startswith("digest"):
        return "digest"
    return "release"


#: What a template name may look like: a plain file stem, never a path.
TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
#: Layouts other templates extend; never a campaign's template.
LAYOUTS = ("base",)


def check_release_template(name: str, settings: Settings | None = None) -> str:
    """``name`` if a release campaign may use it: a plain name (no path, no dots) of a release
    template, and, given ``settings``, one installed in the templates folder with both parts.
    Raises InvalidInput saying which names would do."""
    if not isinstance(name, str) or not TEMPLATE_NAME.fullmatch(name):
        raise InvalidInput(f"{str(name)[:60]!r} is not a template name (letters, digits, - and "
                           "_ only)")
    if template_kind(name) != "release" or name in LAYOUTS:
        raise InvalidInput(f"{name!r} is not a release template")
    if settings is not None and name not in release_templates(settings):
        raise InvalidInput(f"there is no release template {name!r}; installed: "
                           f"{', '.join(release_templates(settings)) or 'none'}")
    return name


def release_templates(settings: Settings) -> list[str]:
    """The release templates installed (both ``.html`` and ``.txt``), by name."""
    folder = settings.effective_templates_dir
    names = {p.stem for p in folder.glob("*.html") if (folder / f"{p.stem}.txt").is_file()}
    return sorted(n for n in names if TEMPLATE_NAME.fullmatch(n)
                  and template_kind(n) == "release" and n not in LAYOUTS)


class TemplateFailure(TemplateError):
    """A ``TemplateError`` that also carries where it happened (for the linter's report)."""

    def __init__(self, template: str, line: int | None, reason: str):
        self.template, self.line, self.reason = template, line, reason
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {reason}")


def make_environment(templates_dir: Path) -> ImmutableSandboxedEnvironment:
    """A sandboxed environment over ``templates_dir``: autoescape for ``.html``, none for
    ``.txt``, undefined names are errors."""
    env = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(templates_dir)),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False,
                                     default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,
    )
    env.filters["duration"] = duration
    return env


def duration(hours: int | float) -> str:
    """``168`` -> ``"7 days"``, ``24`` -> ``"1 day"``, ``36`` -> ``"36 hours"``: how long a
    link works, as a person says it (the ``duration`` filter)."""
    hours = int(hours)
    if hours >= 24 and hours % 24 == 0:
        days = hours // 24
        return f"{days} day" if days == 1 else f"{days} days"
    return f"{hours} hour" if hours == 1 else f"{hours} hours"


@functools.lru_cache(maxsize=8)
def _cached_environment(path: str) -> ImmutableSandboxedEnvironment:
    return make_environment(Path(path))


def environment(settings: Settings) -> ImmutableSandboxedEnvironment:
    """The shared environment for the configured templates (reloads files that changed)."""
    return _cached_environment(str(settings.effective_templates_dir.resolve()))


def render(env: ImmutableSandboxedEnvironment, name: str, context: dict[str, Any]) -> str:
    """Render template ``name``. Raises TemplateFailure naming template, line and cause."""
    try:
        return env.get_template(name).render(context)
    except TemplateNotFound as exc:
        missing = exc.name or name
        raise TemplateFailure(name, None, f"template {missing!r} not found in "
                              f"{_search_path(env)}") from None
    except TemplateSyntaxError as exc:
        raise TemplateFailure(exc.name or name, exc.lineno, f"syntax error: {exc.message}"
                              ) from None
    except SecurityError as exc:
        template, line = locate(exc, env, name)
        raise TemplateFailure(template, line, f"unsafe access: {exc}") from None
    except UndefinedError as exc:
        template, line = locate(exc, env, name)
        raise TemplateFailure(template, line, f"undefined: {exc}") from None
    except JinjaTemplateError as exc:
        template, line = locate(exc, env, name)
        raise TemplateFailure(template, line, str(exc).splitlines()[0]) from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        # A filter or operation applied to the wrong kind of value by a template.
        template, line = locate(exc, env, name)
        raise TemplateFailure(template, line, f"{type(exc).__name__}: {exc}") from None


def locate(exc: BaseException, env, fallback: str) -> tuple[str, int | None]:
    """The innermost template frame of ``exc``'s traceback (Jinja2 rewrites frames so that
    their line numbers are the template's own)."""
    roots = [str(Path(p).resolve()) for p in _search_path(env, as_list=True)]
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = str(Path(frame.filename).resolve()) if frame.filename else ""
        for root in roots:
            if path.startswith(root + "/"):
                return path[len(root) + 1:], frame.lineno
    return fallback, None


def _search_path(env, as_list: bool = False):
    paths = list(getattr(env.loader, "searchpath", []))
    return paths if as_list else ", ".join(paths)
