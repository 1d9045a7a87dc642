# The fixture that runs queued jobs in this process, shared with the training tests.
from tests.annotation_web.training.test_ml_loop import eager_jobs  # noqa: F401
