"""Broadband fetch of course files: the only HTTP code of the agent.

``fetch_file`` resumes from a ``.part`` keyed by the file's sha256, hashes while receiving, tries
the mirrors in order, caps the rate, and moves only a verified file into place. Modules:
``fetch`` (mirror loop), ``transfer`` (one file's attempts), ``partfile`` (.part on disk),
``client`` (urllib3 and its errors), ``bucket`` (rate cap), ``errors`` (FetchError/FetchResult).
"""

from .errors import FetchError, FetchResult
from .fetch import fetch_file

__all__ = ["FetchError", "FetchResult", "fetch_file"]
