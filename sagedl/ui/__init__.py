"""What a user sees while a run goes on: progress displays on stderr.

``progresstext`` holds the pure words and numbers (tested without I/O),
``progress`` draws them as a bar, lines or Sage's dots, ``aggregate`` one
line for the many files of a bulk run.  Why a package:
the displays are a service the commands create and the engine reports to;
they import nothing of the layers above.
"""

from __future__ import absolute_import
