"""The package's layout is its pipeline: each stage imports only the stages before it, and the
product never imports its tools (the sample generator and the benchmark)."""
import ast
import subprocess
import sys
from pathlib import Path

from flows.config import PROJECT

FLOWS = PROJECT / "flows"
# What the modules of each part may import from the package, besides themselves. The foundation is
# what every stage shares: settings, errors, the key, processes, the registry, the forms.
FOUNDATION = {"flows.config", "flows.errors", "flows.pii", "flows.procs", "flows.registry", "flows.schemas"}
MAY_IMPORT = {
    "foundation": set(),
    "ingest": set(),
    "validate": set(),
    "warehouse": {"ingest", "validate"},
    "outputs": {"warehouse"},
}
RUN = {"flows.cli", "flows.monthly", "flows.deploy", "flows.server", "flows.spare", "flows.stopping", "flows.progress"}


def part(module: str) -> str:
    if module in FOUNDATION or module == "flows":
        return "foundation"
    if module in RUN:
        return "run"
    return module.split(".")[1]


def imports(path: Path) -> set[str]:
    """The package's modules a file imports (as `flows.x.y`), at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flows"):
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}" if (FLOWS / node.module[6:].replace(".", "/") / f"{alias.name}.py").exists()
                          or (FLOWS / node.module[6:].replace(".", "/") / alias.name).is_dir() else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("flows")}
    return found


def module_of(path: Path) -> str:
    return ".".join(("flows",) + path.relative_to(FLOWS).with_suffix("").parts).removesuffix(".__init__")


def test_each_stage_imports_only_the_foundation_and_the_stages_before_it():
    wrong = []
    for path in sorted(FLOWS.rglob("*.py")):
        mine = part(module_of(path))
        if mine in ("run", "tools"):
            continue
        allowed = {"foundation", mine} | MAY_IMPORT[mine]
        wrong += [f"{module_of(path)} imports {m}" for m in sorted(imports(path)) if part(m) not in allowed]
    assert wrong == []


def test_the_product_never_imports_its_tools():
    wrong = [f"{module_of(p)} imports {m}" for p in sorted(FLOWS.rglob("*.py"))
             if part(module_of(p)) != "tools" and module_of(p) != "flows.cli"
             for m in imports(p) if part(m) == "tools"]
    assert wrong == []
    # The flow and the deployment, as a worker loads them: nothing of the tools, nor xlwt (an extra).
    loaded = subprocess.run([sys.executable, "-c", "import sys, flows.monthly, flows.deploy, flows.cli; "
                             "print(sorted(m for m in sys.modules if m.startswith('flows.tools') or m == 'xlwt'))"],
                            capture_output=True, text=True, check=True, cwd=PROJECT).stdout
    assert loaded.strip() == "[]"
