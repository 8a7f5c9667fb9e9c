"""The model tests use the training tests' in-memory records (0, 1 and 4 looks)."""

from tests.train.conftest import make_record, records  # noqa: F401  (fixtures)
