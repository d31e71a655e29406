"""pytest plugin for `scripts/compat.sh --short`: hypothesis-driven tests run 10 examples instead of 100.

python-etcd3's tests load a hypothesis profile at import time; loading ours after collection replaces it,
so the suite's files stay as published. Each example of those tests runs etcdctl, hence the time.
"""


def pytest_collection_finish(session):
    try:
        from hypothesis import settings
    except ImportError:
        return
    settings.register_profile("compat-short", max_examples=10, deadline=None)
    settings.load_profile("compat-short")
