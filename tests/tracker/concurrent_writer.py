"""Run as a separate process by test_concurrency: create N issues in a repository through the services."""

import os
import sys

if __name__ == "__main__":
    repo, count, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.environ["SUDOCODE_REPO"] = repo
    os.environ["SUDOCODE_FED_CLI"] = "1"
    os.environ["DJANGO_SETTINGS_MODULE"] = "federation_site.settings"
    import django

    django.setup()
    from federation_site.node import RepoLayout
    from sudocode_cli.runtime import ensure_schema
    from tracker import services

    ensure_schema(RepoLayout(repo))
    for i in range(count):
        services.issue_create(title=f"{label} {i}", actor=label)
