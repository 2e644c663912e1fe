"""What the reservoir's one-file-per-package repositories share (R packages under ``/cran/``, RPMs under ``/rpm/``).

Each such kind keeps one table row per package file, changed only by four
events (``<kind>_added``, ``_removed``, ``_quarantined``, ``_released``) that
bundles carry; uploads arrive by the same authenticated ``PUT``; and the
command line offers the same remove, quarantine and release commands. What
differs (how a file is read and checked, how the index is written) stays in
each kind's own package.
"""
