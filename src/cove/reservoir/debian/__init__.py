"""The reservoir's Debian side: packages fetched with apt, published as a signed apt repository.

Debian packages are stored like everything else (blobs named by sha256,
``deb_added``/``deb_removed`` events that bundles carry); what differs is
publication: each site signs its own apt repository with its own OpenPGP key,
so the closed side of an air gap republishes what it imported under the key
its machines trust.
"""
