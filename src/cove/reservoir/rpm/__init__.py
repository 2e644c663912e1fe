"""A signed yum/dnf repository for RPM packages, served by the reservoir under ``/rpm/<repo>/``.

RPMs are stored like every other package file (blobs named by sha256,
``rpm_added``/``rpm_removed``/... events that bundles carry). Each file's
header is read and its digests checked at ingest (:mod:`.header`), so a
tampered package never enters. Publication runs ``createrepo_c`` over the
repository's active packages and signs ``repodata/repomd.xml`` with the
site's OpenPGP key, the same key that signs its apt repository; dnf checks
that signature (``repo_gpgcheck``) and, through the checksums it covers,
every package it downloads.
"""
