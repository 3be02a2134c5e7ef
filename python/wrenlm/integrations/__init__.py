"""Adapters that let other frameworks use a :class:`wrenlm.Model`, each in its own module and behind
its own extra, so that importing wrenlm never imports them:

- :mod:`wrenlm.integrations.langchain` (``pip install "wrenlm[langchain]"``): ``ChatWrenLM`` and
  ``WrenLMEmbeddings`` on ``langchain-core``.
- :mod:`wrenlm.integrations.ray` (``pip install "wrenlm[ray]"``): ``embed`` and ``generate`` over a
  ``ray.data.Dataset``, one model per Ray actor, on one machine or a cluster.

This package imports nothing itself; import the submodule you need.
"""
