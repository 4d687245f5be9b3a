"""Walk a standardized-storage root and validate every file, in parallel chunks.

The parent walks the tree (every entry is either validated or reported: nothing is skipped silently),
checks the flag-1 uniqueness from the file names alone, and hands chunks of relative paths to worker
processes, which do the per-file work: name, layout, bytes, HL7 content.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from synthetic.validator.config import ValidatorConfig
from synthetic.validator.encoding import decode
from synthetic.validator.message import Matchers, check_message
from synthetic.validator.model import Finding, ValidationReport
from synthetic.validator.names import check_layout, check_name, split_name
from synthetic.validator.rules import finding

DEPTH = 6  # pid[0:3] / pid[3:6] / pid / date / type / file
CHUNK = 256  # files per worker task; a tree smaller than one chunk is validated without a pool


def validate_file(root: str, rel: str, matchers: Matchers) -> list[Finding]:
    """Findings for one file at ``root/rel`` (``rel`` uses ``/`` and sits exactly ``DEPTH`` levels down)."""
    parts = rel.split("/")
    parsed, out = check_name(parts[-1], rel)
    fields = split_name(parts[-1])
    if fields is not None:
        out += check_layout(tuple(parts[:-1]), fields, rel)
    try:
        with open(os.path.join(root, rel), "rb") as fh:
            data = fh.read()
    except OSError as exc:
        out.append(finding("SS2-FILE-UNREADABLE", rel, f"cannot read: {exc.strerror or exc}"))
        return out
    if parsed is None:
        return out
    segments, found = decode(data, rel)
    out += found
    out += check_message(segments, parsed, rel, matchers)
    return out


def _validate_chunk(root: str, rels: list[str]) -> list[Finding]:
    matchers = Matchers()
    out: list[Finding] = []
    for rel in rels:
        out += validate_file(root, rel, matchers)
    return out


def _count_files(top: str) -> int:
    return sum(len(files) for _, _, files in os.walk(top))


@dataclass
class StorageWalk:
    """Walks a root depth-first; ``files()`` yields message files at depth 6 as it finds them.

    Everything else lands in ``findings``: files at another depth, directories at the file level
    (reported with the number of files below them, which are not examined), unreadable entries.
    Symbolic links to files are validated like files; links to directories are reported, not followed,
    so a link loop cannot hang the walk. ``examined`` counts the entries treated as files.
    """

    root: Path
    findings: list[Finding] = field(default_factory=list)
    examined: int = 0

    def files(self) -> Iterator[str]:
        out = self.findings
        stack: list[tuple[str, str, int]] = [(str(self.root), "", 0)]
        while stack:
            folder, prefix, depth = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as exc:
                out.append(
                    finding("SS2-FILE-UNREADABLE", prefix or ".", f"cannot list directory: {exc.strerror}")
                )
                continue
            level = depth + 1
            for entry in entries:
                rel = prefix + entry.name
                try:
                    is_dir = self._is_dir(entry, rel)
                except OSError as exc:
                    self.examined += 1
                    out.append(finding("SS2-FILE-UNREADABLE", rel, f"cannot stat: {exc.strerror}"))
                    continue
                if is_dir is None:
                    continue
                if is_dir and level < DEPTH:
                    stack.append((entry.path, rel + "/", level))
                elif is_dir:
                    n = _count_files(entry.path)
                    out.append(
                        finding(
                            "SS2-LAYOUT-DIR",
                            rel,
                            f"directory at the file level (depth {level}); its {n} file(s) are not examined",
                        )
                    )
                elif level == DEPTH:
                    self.examined += 1
                    yield rel
                else:
                    self.examined += 1
                    out.append(
                        finding(
                            "SS2-LAYOUT-DEPTH",
                            rel,
                            f"file at depth {level}, expected {DEPTH} "
                            "(pid[0:3]/pid[3:6]/pid/date/type/file); content not checked",
                        )
                    )

    def _is_dir(self, entry: os.DirEntry[str], rel: str) -> bool | None:
        """True/False for a directory/file to handle, None when the entry was reported instead."""
        if entry.is_symlink():
            if entry.is_dir():
                self.findings.append(
                    finding("SS2-LAYOUT-DIR", rel, "symbolic link to a directory, not followed")
                )
                return None
            if not entry.is_file():
                self.examined += 1
                self.findings.append(finding("SS2-FILE-UNREADABLE", rel, "dangling or special symbolic link"))
                return None
            return False
        if entry.is_dir(follow_symlinks=False):
            return True
        if not entry.is_file(follow_symlinks=False):
            self.examined += 1
            self.findings.append(
                finding("SS2-FILE-UNREADABLE", rel, "not a regular file (FIFO, socket or device)")
            )
            return None
        return False


def flag_duplicates(files: list[str]) -> list[Finding]:
    """More than one flag-1 file per (pid, date, type, order) (spec §1.5), from the names only.

    One finding per offending group, at the group's first path, naming every file in it.
    """
    groups: dict[tuple[str, ...], list[str]] = {}
    for rel in files:
        fields = split_name(rel.rpartition("/")[2])
        if fields is not None and fields[6] == "1":
            groups.setdefault(tuple(fields[:4]), []).append(rel)
    out = []
    for key, rels in groups.items():
        if len(rels) > 1:
            rels.sort()
            names = ", ".join(r.rpartition("/")[2] for r in rels)
            out.append(
                finding(
                    "SS2-FLAG-DUPLICATE",
                    rels[0],
                    f"{len(rels)} files with flag 1 for pid/date/type/order {'/'.join(key)}: {names}",
                )
            )
    return out


def resolve_jobs(jobs: int) -> int:
    """``jobs`` if positive, else one per core this process may use."""
    if jobs > 0:
        return jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def validate_storage(
    root: Path,
    jobs: int = 0,
    progress: Callable[[int], None] | None = None,
    config: ValidatorConfig | None = None,
) -> ValidationReport:
    """Validate every file under a standardized-storage ``root`` (its children are the pid[0:3] folders).

    ``jobs``: worker processes, 0 = one per core; trees under ``CHUNK`` files run in this process.
    Chunks go to the workers while the walk continues. ``progress`` is called with the number of message
    files just validated (an increment, for ``rich``'s ``advance``) after each chunk; the increments add
    up to the files at depth 6. ``files`` in the report counts every entry examined as a file.
    Findings come back sorted by path, rule and message. ``config`` drops skipped rules and applies
    ``--strict`` (:meth:`ValidatorConfig.apply`).
    """
    root = Path(root)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        missing = ValidationReport(
            str(root), 0, [finding("SS2-ROOT-MISSING", ".", f"storage root {root} {what}")]
        )
        return config.apply(missing) if config is not None else missing
    n_jobs = resolve_jobs(jobs)
    walk = StorageWalk(root)
    files: list[str] = []
    results: list[Finding] = []
    futures: dict[Future[list[Finding]], int] = {}
    with ExitStack() as stack:
        pool: ProcessPoolExecutor | None = None
        start = 0
        for rel in walk.files():
            files.append(rel)
            if len(files) - start == CHUNK and n_jobs > 1:
                pool = pool or stack.enter_context(ProcessPoolExecutor(max_workers=n_jobs))
                futures[pool.submit(_validate_chunk, str(root), files[start:])] = CHUNK
                start = len(files)
        tail = files[start:]
        if pool is None:
            for i in range(0, len(tail), CHUNK):
                results += _validate_chunk(str(root), tail[i : i + CHUNK])
                if progress:
                    progress(len(tail[i : i + CHUNK]))
        elif tail:
            futures[pool.submit(_validate_chunk, str(root), tail)] = len(tail)
        for future in as_completed(futures):
            results += future.result()
            if progress:
                progress(futures[future])
    findings = walk.findings + results + flag_duplicates(files)
    if walk.examined == 0 and not findings:
        findings.append(finding("SS2-ROOT-EMPTY", ".", f"no files under {root}"))
    findings.sort(key=lambda f: (f.path, f.rule, f.message))
    report = ValidationReport(str(root), walk.examined, findings)
    return config.apply(report) if config is not None else report
