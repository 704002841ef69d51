"""Settings for the test suite: no repository by default (tests make their own in temp folders)."""

from federation_site.settings import *  # noqa: F403

SECRET_KEY = "test-only-secret-key-not-for-use-anywhere-else"
SECRET_KEY_IS_EPHEMERAL = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# In-process tests run tasks inline (after the commit that queued them); real nodes run a real worker.
CELERY_TASK_ALWAYS_EAGER = True
