# tests/fuzz: fuzz targets (see the helper that fills this)
