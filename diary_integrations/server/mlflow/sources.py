"""Which model version sources MLflow's registry accepts (`model-versions/create`), in its words.

A local source (a path, or a `file:` URI) must lie inside the artifact folder of the run named by
`run_id` (or of the logged model named by `model_id`), so a client cannot register, and later have the
server read, an arbitrary folder of the server's machine. Any other source must be an absolute path
without `..` parts (after undoing percent-encoding, as often as it was applied) or NUL bytes.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from urllib.parse import unquote_plus, urlparse
from urllib.request import url2pathname

from .errors import invalid

_RELATIVE = ("If supplying a source as an http, https, local file path, ftp, objectstore, or mlflow-artifacts uri, "
             "an absolute path must be provided without relative path references present. "
             "Please provide an absolute path.")


def is_local(uri: str) -> bool:
    """A path on the server's machine: no scheme (a plain path) or `file:`."""
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and uri[1:2] == ":")  # C:\\ on Windows


def local_path(uri: str) -> Path:
    """The path of a local source, refusing a `file:` URI that names another host."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise invalid(f"{uri} is not a valid remote uri. For remote access on windows, please consider using "
                          "a different scheme such as SMB (e.g. smb://<hostname>/<path>).")
        return Path(url2pathname(parsed.path))
    return Path(uri)


def check_remote(source: str) -> None:
    """A non-local source: absolute, without `..` parts or NUL bytes, however percent-encoded."""
    while (plain := unquote_plus(source)) != source:
        source = plain
    path = re.sub(r"/+", "/", urlparse(source).path.rstrip("/"))
    if "\x00" in path or ".." in source.split("/") or (path and posixpath.normpath(path) != path):
        raise invalid(f"Invalid model version source: '{source}'. {_RELATIVE}")


def check_local(source: str, owner: str, owner_uri: str | None) -> None:
    """A local source inside the local artifact folder `owner_uri` of its run or logged model (`owner`
    names which: "run_id" or "model_id"); None when no such owner was given."""
    if "\x00" in source:  # no path has one (and resolving it would raise)
        raise invalid(f"Invalid model version source: {source[:200]!r}. {_RELATIVE}")
    path = local_path(source).resolve()
    if owner_uri is not None and is_local(owner_uri):
        folder = local_path(owner_uri).resolve()
        if folder == path or folder in path.parents:
            return
    kind = "run" if owner == "run_id" else "model"
    raise invalid(f"Invalid model version source: '{path}'. To use a local path as a model version source, the "
                  f"{owner} request parameter has to be specified and the local path has to be contained within "
                  f"the artifact directory of the {kind} specified by the {owner}.")
