"""The content folder on disk: confined paths, verified files, eviction, and intake.

``ContentFolder`` is where course files live once verified; ``take_from_folder`` brings them in
from a satellite receive folder or a USB stick; ``FileHashes`` keeps both from re-reading files.
"""

from agent.adapters.content_files.folder import ContentFolder, ContentPathError
from agent.adapters.content_files.hashes import FileChanged, FileHashes
from agent.adapters.content_files.intake import IntakeError, take_from_folder

__all__ = [
    "ContentFolder",
    "ContentPathError",
    "FileChanged",
    "FileHashes",
    "IntakeError",
    "take_from_folder",
]
