from django.apps import AppConfig


class TrackerConfig(AppConfig):
    """The repository's own issues and specs: the JSONL files and the database index over them."""

    name = "tracker"
    verbose_name = "Issues and specs of this repository"

    def ready(self) -> None:
        from federation_site.signals import node_state_check

        node_state_check.connect(_import_changed_files, dispatch_uid="tracker.import_changed_files")


def _import_changed_files(sender, progress=None, **kwargs) -> None:
    from tracker.sync import jsonl_sync

    jsonl_sync(progress=progress)
