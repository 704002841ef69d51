from django.http import HttpRequest

from tracker.sync import data_problems


def data_problems_banner(request: HttpRequest) -> dict:
    """`data_problems`: the JSONL files that cannot be imported (base.html shows a banner while there are)."""
    return {"data_problems": [p.short for p in data_problems()]}
