"""The repository's address as one setting: ``repository.url`` in ``_config.yml``.

Jupyter Book hands that setting to the theme (the launch buttons, the repository button) as
``html_theme_options["repository_url"]``. Pages that show the address themselves (the course page's ``git clone``
and the Colab set-up commands) write ``{{ repository_url }}``, in prose or inside a code block, and this replaces it
with the setting before the page is parsed, so a fork that changes the setting changes every button and command.
"""

from __future__ import annotations

PLACEHOLDER = "{{ repository_url }}"


def repository_url(config) -> str:
    """The address from the configuration, without a trailing slash or ``.git``."""
    url = (config.html_theme_options or {}).get("repository_url", "")
    return url.rstrip("/").removesuffix(".git")


def substitute(app, docname: str, source: list[str]) -> None:
    """Replace the placeholder in a page's source (Sphinx's ``source-read`` event)."""
    if PLACEHOLDER in source[0]:
        url = repository_url(app.config)
        if not url:
            raise ValueError(f"{docname} uses {PLACEHOLDER} but _config.yml sets no repository.url")
        source[0] = source[0].replace(PLACEHOLDER, url)


def setup(app):
    app.connect("source-read", substitute)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
