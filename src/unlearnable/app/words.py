"""The page's words for the pipeline's messages.

The pipeline speaks to a terminal: its errors and warnings name options (`--labels one`), the
server's folders and classes. The page runs the same pipeline, so every message it shows goes
through `page_words` once, at the boundary (an API error, a failed job, the plan): options become
the page's own controls, folders of the server become their last name, and exception names are
dropped. Anything still naming an option is a gap in OPTION_WORDS (tests/test_app.py looks for one
over every error it provokes).
"""

from __future__ import annotations

import re

CHOICE = {  # the page's names for the --labels values it offers
    "folders": '"By folder"',
    "one": '"One subject"',
    "clusters": '"By similarity"',
    "csv": '"From a CSV"',
}

OPTION_WORDS: list[tuple[str, str]] = [  # (pattern, the page's words), applied in this order
    (
        r"say which folders are the classes: --labels top \(here '([^']*)'\) or --labels leaf \(here '([^']*)'\)",
        r"keep one level of group folders (e.g. put the photos of \1 in \1/ itself), or give each photo's group "
        f"in a CSV ({CHOICE['csv']})",
    ),
    (r"--labels clusters:K\b", CHOICE["clusters"] + " with fewer groups"),
    (r"--labels clusters(:\d+)?", CHOICE["clusters"]),
    (r"--labels one\b", CHOICE["one"]),
    (r"--labels (FILE\.csv|\S+\.csv)", CHOICE["csv"]),
    (r"--labels \S*\.csv", CHOICE["csv"]),
    (r"--labels", "the grouping"),
    (r"--format same\b", 'the file format "same as the original"'),
    (r"--format (png|webp|jpeg)\b", r'the file format "\1"'),
    (r"--format\b", "the file format"),
    (r"--look\b", "the look"),
    (r"--method\b", "the method"),
    (r"--preset\b", "the strength"),
    (r"--set ([\w.]+)=", r"the advanced setting \1="),
    (r"--set\b", "the advanced settings"),
    (r"\(the app's --max-upload-mb sets it\)", "(set when the app was started)"),
    (r"\(see --max-upload-mb\)", "(a limit set when the app was started)"),
    (r"\bclass folders\b", "group folders"),
    (r"\bclass folder\b", "group folder"),
    (r"\bclasses\b", "groups"),
    (r"\bclass\b(?!-)", "group"),
]
_COMPILED = [(re.compile(p), w) for p, w in OPTION_WORDS]
_EXCEPTION = re.compile(r"\b[A-Z]\w*(Error|Exception|Warning): ")
_ABSOLUTE = re.compile(r"(?<![\w.~:/-])/(?:[^\s\"'/]+/)*([^\s\"'/]*)")


def without_server_paths(value):
    """`value` (a message, a manifest, a report) with every absolute path of the server cut to its
    last name (`/home/me/.cache/unlearnable/app/uploads/3f/photos` -> `photos`): what the page
    shows or offers for download tells nothing of the server's folders."""
    if isinstance(value, str):
        return _ABSOLUTE.sub(lambda m: m.group(1), value)
    if isinstance(value, dict):
        return {without_server_paths(k): without_server_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_server_paths(v) for v in value]
    return value


def page_words(message: str, folders: dict[str, str] | None = None) -> str:
    """`message` in the page's words: `folders` maps a server folder to what the page calls it
    ({"/.../uploads/3f/photos": "your photos"}), other paths are cut to their last name."""
    for path, name in sorted((folders or {}).items(), key=lambda kv: -len(kv[0])):
        message = message.replace(path, name)
    message = _EXCEPTION.sub("", without_server_paths(message))
    for pattern, words in _COMPILED:
        message = pattern.sub(words, message)
    return message
