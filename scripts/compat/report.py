#!/usr/bin/env python3
"""Results of scripts/compat.sh: JUnit XML to (test, result) lines, and the comparison of two servers.

  report.py junit FILE.xml                 print "test<TAB>pass|fail|skip" for every test case
  report.py compare OUT ETCD_LABEL SUITE...  read OUT/<server>/<suite>.tsv, print the differences and
                                           counts; exit 1 when a test passing on etcd does not pass on cairn
"""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# Tests allowed to pass on etcd and fail on cairn, each with its reason written next to it: tests that need
# etcd's bbolt snapshot file where cairn truly cannot give it (cairn writes etcd's format, so none today),
# and a test waiting on an open item of another issue, until that item lands.
ALLOWED: dict[tuple[str, str], str] = {
}


def junit(path: str) -> None:
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        tags = {child.tag for child in case}
        if "failure" in tags or "error" in tags:
            result = "fail"
        elif "skipped" in tags:
            result = "skip"
        else:
            result = "pass"
        # A teardown error after a pass is written as a second <testcase> with the same name: fail wins.
        print(f"{name}\t{result}")


def read(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    results: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "\t" not in line:
            continue
        test, result = line.split("\t", 1)
        if results.get(test) != "fail":
            results[test] = result
    return results


def counts(results: dict[str, str] | None) -> str:
    if results is None:
        return "not run"
    n = {k: sum(1 for r in results.values() if r == k) for k in ("pass", "fail", "skip")}
    return f"{n['pass']} pass, {n['fail']} fail, {n['skip']} skip"


def compare(out: str, etcd_label: str, suites: list[str]) -> int:
    base = Path(out)
    regressions = 0
    rows: list[tuple[str, str, str, str]] = []
    table: list[tuple[str, str, str]] = []
    for suite in suites:
        etcd = read(base / "etcd" / f"{suite}.tsv")
        cairn = read(base / "cairn" / f"{suite}.tsv")
        table.append((suite, counts(etcd), counts(cairn)))
        if cairn is not None and any(t.startswith("(") for t in cairn):
            regressions += 1  # the server or the suite itself did not run on cairn
        if etcd is None or cairn is None:
            # One server only: list its failures, nothing to compare them with.
            for test, result in sorted((etcd or cairn or {}).items()):
                if result == "fail":
                    rows.append((suite, test, result if etcd else "-", result if cairn else "-"))
            continue
        for test in sorted(set(etcd) | set(cairn)):
            e, c = etcd.get(test, "absent"), cairn.get(test, "absent")
            if e == c:
                continue
            note = ""
            if e == "pass" and c != "pass":
                reason = ALLOWED.get((suite, test))
                if reason:
                    note = f"allowed: {reason}"
                else:
                    regressions += 1
                    note = "REGRESSION"
            rows.append((suite, test, e, c + (f"  ({note})" if note else "")))
    print()
    print(f"differences (suite | test | {etcd_label} | cairn):" if rows else "differences: none")
    for suite, test, e, c in rows:
        print(f"  {suite:22} {test:80} {e:6} {c}")
    print()
    print(f"  {'suite':22} {etcd_label:32} cairn")
    for suite, e, c in table:
        print(f"  {suite:22} {e:32} {c}")
    print()
    if regressions:
        print(f"compat: {regressions} test(s) pass on etcd and not on cairn")
        return 1
    print("compat: every test that passes on etcd passes on cairn")
    return 0


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "junit":
        junit(sys.argv[2])
        return 0
    if len(sys.argv) >= 4 and sys.argv[1] == "compare":
        return compare(sys.argv[2], sys.argv[3], sys.argv[4:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
