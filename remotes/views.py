"""The remotes page: which repositories this node knows, how far it trusts them, and how their sync goes."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from remotes.models import CrossRepoReference, RemoteRepo
from remotes.selectors import remote_summary


def remote_list(request: HttpRequest) -> HttpResponse:
    remotes = [remote_summary(r) for r in RemoteRepo.objects.all()]
    unknown = CrossRepoReference.objects.filter(remote_repo__isnull=True).values_list("repo", flat=True).distinct()
    return render(request, "remotes/list.html", {"remotes": remotes, "unknown_repos": sorted(set(unknown))})
