"""The ``wordcounts`` job: read ``documents/<id>/text.txt`` from jobq storage, write a summary beside it."""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import lru_cache
from typing import Any

import attrs
from jobq import JobContext, JobFailed, Settings, UnrecoverableError
from jobq.storage import Storage, safe_key

WORD = re.compile(r"\w+")


@attrs.frozen(kw_only=True)
class WordCountJob:
    """Wire JSON: ``{"documentId": "d1", "topWords": 10}``."""

    document_id: str = attrs.field(validator=attrs.validators.matches_re(r"[A-Za-z0-9_-]{1,64}"))
    top_words: int = attrs.field(default=10, validator=[attrs.validators.ge(1), attrs.validators.le(100)])


@lru_cache(maxsize=4)
def _storage(url: str, public_url: str | None) -> Storage:
    return Storage(url, public_url)


def storage() -> Storage:
    """Storage of the current STORAGE_URL, built once per process and per setting."""
    s = Settings.from_env()
    return _storage(s.storage_url, s.storage_public_url)


def count_words(job: JobContext) -> dict[str, Any]:
    data: WordCountJob = job.data
    store = storage()
    source = safe_key("documents", data.document_id, "text.txt")
    try:
        raw = store.get(source)
    except FileNotFoundError:
        raise UnrecoverableError(f"document {data.document_id} has no text.txt", code="ERR_NO_DOCUMENT") from None
    except OSError as exc:  # a storage hiccup: retried with backoff
        raise JobFailed(f"could not read {source}: {type(exc).__name__}", code="ERR_STORAGE") from exc
    job.progress("1/2")
    words = Counter(w.lower() for w in WORD.findall(raw.decode("utf-8", errors="replace")))
    summary = {"documentId": data.document_id, "words": sum(words.values()), "distinct": len(words),
               "top": words.most_common(data.top_words)}
    key = store.put(safe_key("documents", data.document_id, "wordcount.json"), json.dumps(summary).encode())
    job.progress("2/2")
    return {"summaryUrl": store.url(key), "words": summary["words"], "distinct": summary["distinct"]}
