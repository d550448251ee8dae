"""The embed engine: ``engine`` (settings, keys, the driver), ``items``, ``cache``, ``local`` and
``ray_executor`` (compute), ``assemble`` (the store). See :mod:`pipeline.features.embed.engine`."""
