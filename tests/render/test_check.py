"""Template linting: the shipped templates pass; broken or unsafe ones are named precisely."""

from __future__ import annotations

import pytest

from mailer.errors import TemplateError
from mailer.render.check import assert_template_ok, check_all
from mailer.settings import get_settings

# Templates do not touch the database: one backend is enough.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _line_of(path, needle):
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_shipped_templates_pass(settings):
    assert check_all(settings) == []
    for name in ("press_release", "digest", "confirm_subscription", "welcome"):
        assert_template_ok(name, settings)


def test_undefined_variable_is_named_with_its_line(folder):
    path = folder / "press_release.html"
    _edit(path, "<h1>{{ release.title }}</h1>", "<h1>{{ release.title }} {{ senator_name }}</h1>")
    problems = check_all(get_settings())
    assert [(p.template, p.line) for p in problems] == [
        ("press_release.html", _line_of(path, "senator_name"))]
    assert "senator_name" in problems[0].message
    with pytest.raises(TemplateError, match=r"press_release\.html:\d+: undefined variable "
                                            r"'senator_name'"):
        assert_template_ok("press_release", get_settings())


def test_undefined_attribute_is_caught_when_rendering(folder):
    path = folder / "digest.txt"
    _edit(path, "{{ item.title", "{{ item.headline")
    problems = check_all(get_settings())
    assert len(problems) == 1
    assert problems[0].template == "digest.txt"
    assert problems[0].line == _line_of(path, "item.headline")
    assert "headline" in problems[0].message


def test_undefined_name_in_a_branch_sample_data_never_takes(folder):
    _edit(folder / "welcome.txt", "Recent news:", "{% if false %}{{ nobody_defines_me }}"
                                                  "{% endif %}Recent news:")
    problems = check_all(get_settings())
    assert [p.template for p in problems] == ["welcome.txt"]
    assert "nobody_defines_me" in problems[0].message


@pytest.mark.parametrize("expression", [
    "''.__class__.__mro__",
    "release.title.__class__",
    "release['__class__']",
])
def test_sandbox_escape_is_refused(folder, expression):
    path = folder / "press_release.html"
    _edit(path, "<h1>{{ release.title }}</h1>", f"<h1>{{{{ {expression} }}}}</h1>")
    problems = check_all(get_settings())
    assert problems and all(p.template == "press_release.html" for p in problems)
    assert problems[0].line == _line_of(path, expression)
    assert "unsafe" in problems[0].message and "__class__" in problems[0].message


def test_sandbox_escape_is_refused_at_render_time_too(folder):
    """Even a computed attribute name (invisible to the static check) cannot escape."""
    from mailer.errors import TemplateError as Refused
    from mailer.render.check import sample_contexts
    from mailer.render.compile import render_html

    _edit(folder / "press_release.html", "<h1>{{ release.title }}</h1>",
          "<h1>{{ release.title | attr('__cla' ~ 'ss__') }}</h1>")
    settings = get_settings()
    with pytest.raises(Refused, match="unsafe|undefined"):
        render_html("press_release", settings, sample_contexts("press_release", settings)[0])


def test_syntax_error_names_file_and_line(folder):
    path = folder / "base.html"
    _edit(path, "{% block body %}{% endblock %}", "{% block body %}{% endblok %}")
    problems = check_all(get_settings())
    assert problems and problems[0].template == "base.html"
    assert problems[0].line == _line_of(path, "endblok")
    assert "syntax error" in problems[0].message


def test_footer_links_and_address_are_required(folder):
    _edit(folder / "base.html", '<a href="{{ recipient.unsubscribe_url }}">Unsubscribe</a>', "")
    messages = [str(p) for p in check_all(get_settings())]
    assert "press_release.html: the footer must show the unsubscribe link " \
           "(recipient.unsubscribe_url)" in messages
    assert "digest.html: the footer must show the unsubscribe link " \
           "(recipient.unsubscribe_url)" in messages


def test_scripts_external_css_and_images_without_alt_are_refused(folder):
    _edit(folder / "press_release.html", "{% endblock %}",
          '<script>alert(1)</script><link rel="stylesheet" href="https://x/y.css">'
          '<img src="https://x/y.png">{% endblock %}')
    messages = " | ".join(str(p) for p in check_all(get_settings()))
    assert "<script>" in messages
    assert "external stylesheet" in messages
    assert "image without alt text" in messages


def test_missing_text_version_is_a_problem(folder):
    (folder / "digest.txt").unlink()
    problems = check_all(get_settings())
    assert [p.template for p in problems] == ["digest.txt"]
    assert "missing" in problems[0].message


def test_custom_campaign_template_is_checked(folder):
    (folder / "town_hall.html").write_text('{% extends "base.html" %}{% block body %}'
                                           "{{ release.venue }}{% endblock %}")
    (folder / "town_hall.txt").write_text('{% extends "base.txt" %}{% block body %}'
                                          "{{ release.title }}{% endblock %}")
    problems = check_all(get_settings())
    assert [(p.template, p.line) for p in problems] == [("town_hall.html", 1)]
    assert "venue" in problems[0].message


def test_filters_on_per_recipient_values_are_refused(folder):
    """``recipient.name | upper`` would upper-case the placeholder, not the name."""
    path = folder / "press_release.html"
    _edit(path, "Dear {{ recipient.name }},", "Dear {{ recipient.name | upper }},")
    problems = check_all(get_settings())
    assert [(p.template, p.line) for p in problems] == [
        ("press_release.html", _line_of(path, "recipient.name | upper"))]
    assert "recipient.name is filled in per person" in problems[0].message


def test_layout_problem_is_reported_once_at_its_own_line(folder):
    path = folder / "base.html"
    _edit(path, "<title>{{ subject }}</title>", "<title>{{ office.nmae }}</title>")
    problems = check_all(get_settings())
    assert [(p.template, p.line, p.message) for p in problems] == [
        ("base.html", _line_of(path, "office.nmae"), "undefined attribute 'nmae'")]


def test_text_version_must_be_plain_and_readable(folder):
    path = folder / "welcome.txt"
    _edit(path, "Dear {{ recipient.name }},", "<p>Dear {{ recipient.name }},</p> " + "x" * 90)
    messages = [p.message for p in check_all(get_settings()) if p.template == "welcome.txt"]
    assert any("contains HTML (<p>)" in m for m in messages)
    assert any("line of" in m and "wordwrap" in m for m in messages)
