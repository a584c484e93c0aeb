import pytest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Six synthetic clips (a few seconds each): enough for loops, not for quality."""
    from vlogger_cli.motion.corpus import build_corpus

    root = tmp_path_factory.mktemp("motion-data")
    build_corpus(root, clips=6, seed=3)
    return root
