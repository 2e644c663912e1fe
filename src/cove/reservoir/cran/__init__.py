"""A CRAN-like repository for R packages, served by the reservoir under ``/cran/``.

R's ``install.packages(repos=URL)`` reads ``URL/src/contrib/PACKAGES.gz`` (it
asks for ``PACKAGES.rds`` first and falls back when that is missing) and then
downloads ``URL/src/contrib/<package>_<version>.tar.gz``. The reservoir keeps
each package's ``DESCRIPTION`` (read once at ingest) in a ``cran_added``
event, so the index is rendered from the database and bundles carry R
packages the same way they carry wheels and ``.deb`` files.
"""
