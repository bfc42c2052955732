"""Which types grew between heap censuses (bench/heap_census/sitecustomize.py):

    python bench/heap_census/compare.py WARM AFTER_PASS_1 [AFTER_PASS_2 ...]

prints each census's summary lines, then the 25 types whose shallow bytes grew most from
the first census to the second, with their counts in every census.
"""

import re
import sys
from pathlib import Path

_ROW = re.compile(r"\s*(\d+)\s+(\d+)\s+(\S+)$")


def read(path: str) -> tuple[list[str], dict[str, tuple[int, int]]]:
    summary, types = [], {}
    for line in Path(path).read_text().splitlines():
        row = _ROW.match(line)
        if row:
            types[row[3]] = (int(row[1]), int(row[2]))
        else:
            summary.append(line)
    return summary, types


def main(paths: list[str]) -> None:
    censuses = [read(path) for path in paths]
    for path, (summary, _) in zip(paths, censuses, strict=True):
        print(path, *summary, sep="\n  ")
    names = set().union(*(types for _, types in censuses))
    grown = sorted(
        names,
        key=lambda n: censuses[1][1].get(n, (0, 0))[0] - censuses[0][1].get(n, (0, 0))[0],
        reverse=True,
    )
    for name in grown[:25]:
        sizes = [types.get(name, (0, 0)) for _, types in censuses]
        print(f"{sizes[1][0] - sizes[0][0]:>+10} B  {name:<50} counts {[c for _, c in sizes]}")


if __name__ == "__main__":
    main(sys.argv[1:])
