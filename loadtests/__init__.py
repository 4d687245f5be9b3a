"""Locust users, shapes and the raw-timing recorder for ``rhin load`` (the only package that imports locust;
importing it monkey-patches the standard library through gevent)."""
