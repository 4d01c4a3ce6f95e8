"""The order in which one file's sources are tried.

Why a module of its own: the failover loop (download.py) decides what to do
with a failure; which source comes next is a separate question with its own
rules, and it was once answered by a closure that read the loop's index and
changed three lists the loop also changed.  The rules:

* Sources may be planned one at a time (an iterator): the next one is asked
  for only when it is needed, so the network that planning a source costs
  (ranking the mirrors) is used only when that source is reached.
* A source that failed a checksum after a resume earns one more try from
  scratch (the old bytes may be the bad ones), after every planned source.
* Sources whose hosts repeat are labelled by host and path, so the final
  error tells them apart.
"""

from __future__ import absolute_import

from sagedl.net.urls import redact


class SourceQueue(object):
    """The sources still to try, each as (source, from_scratch).

    ``planned``: the sources (Source objects), or an iterator yielding them.
    ``sources``: every source planned so far, in order (the list grows as
    the queue reaches further)."""

    def __init__(self, planned):
        self._pending = iter(planned)
        self.sources = []
        self._next = None        # (source, from_scratch) planned but not yet taken
        self._later = []         # tries from scratch: after every planned source
        self._retried = set()    # URLs that already had their try from scratch

    def peek(self):
        """The next (source, from_scratch) without taking it, or None when
        every source has been tried; plans the next source if need be."""
        while self._next is None:
            src = next(self._pending, None)
            if src is not None:
                self.sources.append(src)
                distinct_labels(self.sources)
                self._next = (src, False)
            elif self._later:
                self._next = self._later.pop(0)
            else:
                return None
        return self._next

    def take(self):
        """The next (source, from_scratch), or None; it is no longer queued."""
        entry = self.peek()
        self._next = None
        return entry

    def again_from_scratch(self, src):
        """Queue one more try of ``src`` from byte zero, after the planned
        sources; a source gets it once.  False when it already had it."""
        if src.url in self._retried:
            return False
        self._retried.add(src.url)
        self._later.append((src, True))
        return True


def distinct_labels(sources):
    """Label sources by host, or by host and path when hosts repeat, so the
    final error tells them apart."""
    labels = [s.label for s in sources]
    if len(set(labels)) < len(labels):
        for s in sources:
            if labels.count(s.label) > 1:
                s.label = redact(s.url).split("://", 1)[-1].rsplit("/", 1)[0] + "/"
    return sources
