"""Mutation testing: does the suite notice when one line of the package is wrong?

Each mutant changes one operator or constant in one module (+ to -, < to <=,
== to !=, and to or, True to False, n to n + 1, not x to x, ...), is written
into a private copy of the tree, and the tests that exercise that module run
against it (stopping at the first failure). A mutant is killed when a test
fails or the run exceeds its time limit, and survives when every test passes:
a survivor is a bug the suite would let through.

    python tools/mutation.py                      # every module, up to 40 mutants each
    python tools/mutation.py --module cli --per-module 80 --jobs 2

Mutants are sampled with --seed from all candidates, so a run is reproducible.
Prints a table per module and the survivors (file:line and the change).
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The tests that exercise each module (running only these keeps a survivor's cost down).
TESTS = {
    "compose": ["test_compose.py", "test_generator.py", "test_realistic.py", "test_hardening.py", "test_options.py", "test_dataset.py"],
    "idx": ["test_idx.py", "test_data.py", "test_hardening.py"],
    "data": ["test_data.py", "test_hardening.py", "test_options.py", "test_generator.py"],
    "png": ["test_cli.py", "test_generator.py", "test_hardening.py", "test_realistic.py", "test_dataset.py", "test_formats.py"],
    "noise": ["test_generator.py", "test_model.py", "test_options.py", "test_cli.py"],
    "spec": ["test_dataset.py", "test_formats.py", "test_realistic.py", "test_options.py"],
    "formats": ["test_formats.py", "test_dataset.py"],
    "job": ["test_formats.py", "test_dataset.py", "test_hardening.py"],
    "export": ["test_formats.py", "test_dataset.py", "test_hardening.py"],
    "download": ["test_download.py", "test_data.py"],
    "torch": ["test_torch.py"],
    "cli": ["test_cli.py", "test_options.py", "test_realistic.py", "test_hardening.py", "test_dataset.py", "test_model.py",
            "test_formats.py"],
    "model": ["test_model.py", "test_hardening.py", "test_options.py", "test_generator.py"],
    "train": ["test_model.py", "test_cli.py"],
    "handwriting": ["test_realistic.py"],
    "paper": ["test_realistic.py"],
    "realistic": ["test_realistic.py"],
    "checks": ["test_realistic.py", "test_hardening.py", "test_cli.py"],
    "augment": ["test_options.py", "test_dataset.py", "test_realistic.py", "test_cli.py"],
    "generator": ["test_generator.py", "test_options.py", "test_realistic.py", "test_hardening.py", "test_model.py", "test_cli.py"],
    "loaders": ["test_dataset.py", "test_options.py", "test_realistic.py"],
    "atomic": ["test_data.py", "test_formats.py", "test_dataset.py", "test_hardening.py", "test_download.py"],
    "cluster": ["test_cluster.py"],
}

SWAPS = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.And: ast.Or, ast.Or: ast.And,
    ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr, ast.USub: ast.UAdd,
}


def _docstring_nodes(tree: ast.AST) -> set[int]:
    """Docstrings and type annotations: changing them changes no behaviour (annotations are never evaluated)."""
    ids = set()
    for node in ast.walk(tree):
        notes = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            notes.append(node.returns)
            args = node.args
            notes += [a.annotation for a in args.posonlyargs + args.args + args.kwonlyargs]
            notes += [a.annotation for a in (args.vararg, args.kwarg) if a is not None]
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
        for note in notes:
            if note is not None:
                ids.update(id(n) for n in ast.walk(note))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def candidates(source: str) -> list[tuple[int, int, str]]:
    """(index in ast.walk order, line, description) of every possible mutation."""
    tree = ast.parse(source)
    skip = _docstring_nodes(tree)
    # Nothing inside f-strings or plain message strings: changing a message is not a bug.
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node))
    out = []
    for k, node in enumerate(ast.walk(tree)):
        line = getattr(node, "lineno", 0)
        if id(node) in skip:
            continue
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.AugAssign)) and type(node.op) in SWAPS:
            out.append((k, line, f"{type(node.op).__name__} -> {SWAPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append((k, line, "drop not"))
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in SWAPS:
            out.append((k, line, f"{type(node.ops[0]).__name__} -> {SWAPS[type(node.ops[0])].__name__}"))
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                out.append((k, line, f"{node.value} -> {not node.value}"))
            elif isinstance(node.value, int):
                out.append((k, line, f"{node.value} -> {node.value + 1}"))
            elif isinstance(node.value, float):
                out.append((k, line, f"{node.value} -> {node.value * 2 + 1}"))
    return out


def mutate(source: str, index: int) -> str:
    tree = ast.parse(source)
    for k, node in enumerate(ast.walk(tree)):
        if k != index:
            continue
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            # not x -> x: replace the node in its parent
            for parent in ast.walk(tree):
                for field, value in ast.iter_fields(parent):
                    if value is node:
                        setattr(parent, field, node.operand)
                    elif isinstance(value, list) and node in value:
                        value[value.index(node)] = node.operand
        elif isinstance(node, (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.AugAssign)):
            node.op = SWAPS[type(node.op)]()
        elif isinstance(node, ast.Compare):
            node.ops[0] = SWAPS[type(node.ops[0])]()
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                node.value = not node.value
            elif isinstance(node.value, int):
                node.value = node.value + 1
            else:
                node.value = node.value * 2 + 1
        break
    return ast.unparse(tree)


def copy_tree(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)


def run_tests(tree: Path, tests: list[str], timeout: float) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           *[f"tests/{t}" for t in tests]]
    try:
        result = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "survived" if result.returncode == 0 else "killed"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="mutation testing of digitgenerator")
    parser.add_argument("--module", action="append", choices=sorted(TESTS), help="only these modules (repeatable)")
    parser.add_argument("--per-module", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)

    modules = args.module or ["compose", "idx", "data", "png", "noise", "dataset", "cli", "model"]
    work = []
    for module in modules:
        source = (ROOT / "digitgenerator" / f"{module}.py").read_text()
        found = candidates(source)
        picked = random.Random(f"{args.seed}-{module}").sample(found, min(args.per_module, len(found)))
        work += [(module, source, index, line, what) for index, line, what in sorted(picked, key=lambda c: c[1])]
    print(f"{len(work)} mutants over {len(modules)} modules, {args.jobs} at a time", file=sys.stderr)

    base = Path(tempfile.mkdtemp(prefix="digitgenerator-mutation-"))
    if (ROOT.parent / "shared").is_dir():  # the trees' ../shared, so that tests needing real MNIST run, not skip
        (base / "shared").symlink_to(ROOT.parent / "shared")
    trees = []
    for j in range(args.jobs):
        trees.append(base / f"tree{j}")
        copy_tree(trees[-1])
    free = list(trees)

    def one(item):
        module, source, index, line, what = item
        tree = free.pop()
        try:
            path = tree / "digitgenerator" / f"{module}.py"
            path.write_text(mutate(source, index))
            outcome = run_tests(tree, TESTS[module], args.timeout)
            path.write_text(source)
        finally:
            free.append(tree)
        print(f"{module}.py:{line} {what}: {outcome}", file=sys.stderr, flush=True)
        return module, line, what, outcome

    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(one, work))
    shutil.rmtree(base, ignore_errors=True)

    print(f"\nmutation run: {len(results)} mutants, seed {args.seed}, {time.perf_counter() - start:.0f} s\n")
    print("| module | mutants | killed | survived | score |")
    print("|---|---|---|---|---|")
    total = killed_all = 0
    for module in modules:
        mine = [r for r in results if r[0] == module]
        killed = sum(r[3] != "survived" for r in mine)
        total, killed_all = total + len(mine), killed_all + killed
        print(f"| {module}.py | {len(mine)} | {killed} | {len(mine) - killed} | {killed / max(len(mine), 1):.0%} |")
    print(f"| all | {total} | {killed_all} | {total - killed_all} | {killed_all / max(total, 1):.0%} |")
    survivors = [r for r in results if r[3] == "survived"]
    if survivors:
        print("\nsurvivors:")
        for module, line, what, _ in survivors:
            print(f"- digitgenerator/{module}.py:{line}: {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
