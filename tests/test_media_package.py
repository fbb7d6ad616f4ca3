"""Tests for myyoutube.media's own module: its names, some of them loaded on first use."""

from __future__ import annotations

import types

from myyoutube import media


def test_every_name_the_package_offers_is_the_object_its_module_defines():
    """Each name in media.__all__ resolves, the ones loaded on first use included, and none
    to a module: `transcode` is the function, though a module has that name too."""
    for name in media.__all__:
        assert not isinstance(getattr(media, name), types.ModuleType), name
    assert media.transcode.__module__ == "myyoutube.media.transcode"
    assert media.Truncated.__module__ == "myyoutube.media.probe"
