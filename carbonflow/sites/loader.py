"""Site files: YAML in, a validated :class:`~carbonflow.domain.site.model.SiteDocument` out.

Every problem is reported with the file, the line and the field path, all at once::

    shanxi-mine.yaml:142: devices[7].carrier: unknown carrier 'electrcity' (did you mean …)

The YAML is composed into a node tree once (``yaml.compose`` semantics, safe loader); the data
for the model is constructed from that tree, and each error location of the model is walked
down the same tree to the line of the key (or list item) it names. Where a location has no node
(a missing field, a key filled in by a default) the line of the nearest enclosing node is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from carbonflow.domain.site.model import Loc, SiteDocument, format_loc, validation_issues


@dataclass(frozen=True, slots=True)
class SiteFileProblem:
    file: str  # the file name as given
    line: int  # 1-based
    field: str  # e.g. devices[7].carrier; empty for syntax errors
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class SiteFileError(ValueError):
    """A site file that does not load; ``problems`` lists every problem, in line order."""

    def __init__(self, problems: list[SiteFileProblem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: p.line))
        super().__init__("\n".join(str(p) for p in self.problems))


#: The example sites shipped with the package (a coal mine in Shanxi, a park in Ordos).
EXAMPLES = Path(__file__).resolve().parent / "examples"


def load_site_file(path: str | Path) -> SiteDocument:
    """Read and validate one site file. Raises :class:`SiteFileError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteFileError([SiteFileProblem(path.name, 1, "", f"cannot read: {exc}")]) from None
    return parse_site_text(text, path.name)


def parse_site_text(text: str, filename: str = "<site>") -> SiteDocument:
    """Validate a site document given as YAML text; ``filename`` is used in messages."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise SiteFileError([SiteFileProblem(filename, 1, "", "the file is empty")])
        duplicates = _duplicate_keys(root, filename)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        detail = ": ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SiteFileError(
            [SiteFileProblem(filename, line, "", f"YAML syntax: {detail}")]
        ) from None
    except yaml.YAMLError as exc:
        raise SiteFileError([SiteFileProblem(filename, 1, "", f"YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if duplicates:
        raise SiteFileError(duplicates)
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise SiteFileError([SiteFileProblem(filename, 1, "", f"expected a mapping, got {kind}")])
    try:
        return SiteDocument.model_validate(data)
    except ValidationError as exc:
        raise SiteFileError(
            [
                SiteFileProblem(
                    filename, _line_of(root, issue.loc), format_loc(issue.loc), issue.message
                )
                for issue in validation_issues(exc)
            ]
        ) from None


def _line_of(root: yaml.Node, loc: Loc) -> int:
    """1-based line of the key or item that ``loc`` names, or of its nearest existing parent."""
    node, mark = root, root.start_mark
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):  # the last of repeated keys wins
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    node, mark = value, key.start_mark
                    break
            else:
                break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    return mark.line + 1


def _duplicate_keys(
    node: yaml.Node, filename: str, path: Loc = (), visited: set[int] | None = None
) -> list[SiteFileProblem]:
    """Keys given twice in one mapping (PyYAML would silently keep the last)."""
    problems: list[SiteFileProblem] = []
    visited = set() if visited is None else visited
    if id(node) in visited:  # an alias of a node already checked
        return problems
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            if name in seen and name != "<<":
                field = format_loc((*path, name))
                problems.append(
                    SiteFileProblem(filename, key.start_mark.line + 1, field, "key given twice")
                )
            seen.add(name)
            problems += _duplicate_keys(value, filename, (*path, name), visited)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += _duplicate_keys(item, filename, (*path, i), visited)
    return problems
