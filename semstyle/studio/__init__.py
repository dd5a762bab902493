"""The doodle studio: a local web page where a painter picks a painting, paints a doodle in its map's colours and
watches the doodle method paint it (``semstyle studio``, ``make studio``; docs/studio.md).

- :mod:`.store`: the studio's folder (styles with their maps and palettes, underlay photos, doodles, results),
  upload checks and the snapping of a posted doodle to the palette; plain functions, no web framework.
- :mod:`.jobs`: one run at a time in a thread, its progress events and frames, Stop.
- :mod:`.app`: the Starlette app (page, JSON API, server-sent events); needs the ``studio`` extra.
- :mod:`.cli`: ``semstyle studio`` (starts uvicorn on 127.0.0.1 and opens the page).

Importing this package imports no web framework, so the core package never depends on the extra.
"""
