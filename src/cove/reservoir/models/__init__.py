"""Model repositories in the reservoir: a Hugging Face Hub-compatible store for weights.

A repository (``org/name``) holds commits; a commit is a set of files, each a
blob in the reservoir's content-addressed store, so a file shared by two
commits or two repositories is stored once. Revision names (``main``, ``v1``)
point at commits. Everything changes through ``model_*`` events, so bundles
carry repositories across an air gap exactly like packages, and the site
policy judges each commit's license (from the model card) like a package's.

:mod:`.hub` serves the part of the Hub's HTTP API that ``huggingface_hub``
downloads with, so ``HF_ENDPOINT=<reservoir>`` makes ``snapshot_download``,
``hf_hub_download`` and ``from_pretrained`` work unchanged.
"""
