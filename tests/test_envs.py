"""Static guard for `--software-deployment-method conda` (no conda needed to run it).

Snakemake runs each rule's script in the conda env named by its `conda:` directive. A
missing package there does not always fail loudly: the script preamble appends the
host process's whole sys.path (its site-packages included) as a fallback, so on a
machine where the host runs Python 3.11 too the import may quietly succeed with the
host's copy, and fail on the next cluster. These tests check, without conda:

* every rule that runs something declares `conda:`, pointing at an existing env file;
* every third-party module imported by a rule's script, directly or through the
  `e3hier` modules it imports (transitively, lazy imports in functions included), is
  provided by that rule's env;
* every env takes only `python` (pinned to pyproject's) and `pip` from conda-forge, and
  every other package from PyPI, in its `pip:` section, pinned `name==version` to exactly
  the version of requirements.lock (the venv's pins): those are the versions the tests
  ran with, and PyPI serves them, which no conda channel reachable here could confirm;
* the env files are exactly what `make envs` (e3hier.workflow.envs) generates from requirements.lock: each pins
  the full dependency closure of its packages (markers evaluated for Linux, CPython 3.11), and takes
  torch's CPU build from PyTorch's CPU index, except train-cuda, which the train rules use when
  train.device resolves to CUDA;
* the project's own package reaches the envs the way docs/cluster.md says: not
  installed into them, but imported from the workflow's source tree, because
  Snakemake puts the Snakefile's directory on the script's sys.path.
"""

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from workflow_helpers import snakemake

from e3hier.workflow import envs as env_generator

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "e3hier"

# import name -> PyPI distribution name, where they differ
DIST_NAME = {
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "skimage": "scikit-image",
    "cv2": "opencv-python",
}
# the only packages an env takes from conda-forge: the interpreter and the installer
CONDA_ONLY = {"python", "pip"}
# pip options an env's pip: section may hold (e.g. the PyTorch index of a CUDA build, docs/cluster.md)
PIP_OPTIONS = ("--extra-index-url", "--index-url", "--find-links")
# `name==version` and nothing else: extras allowed, no ranges, no local build labels, no markers
PIP_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.\-]*)(?:\[[A-Za-z0-9_,.\-]+\])?==([A-Za-z0-9_.!]+)")
# imported by scripts but supplied by the runner, not the env: the `snakemake` object is
# injected by the preamble, which imports snakemake from the host's sys.path
PROVIDED_BY_RUNNER = {"snakemake"}
ACTION_DIRECTIVES = {"script", "shell", "notebook", "wrapper", "run", "cwl"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------- parsing


def parse_rules(path: Path) -> dict:
    """``{rule: {directive: first value line}}`` of a Snakefile or .smk file.

    Indentation-based: a rule starts at a `rule NAME:`/`checkpoint NAME:` line, at any
    depth (rules made in a loop, anonymous `rule:` with a `name:` directive included);
    its directives are the lines one level deeper, a directive's value sits either on
    its own line or on the next, deeper, line; the rule ends at the next line that is
    not deeper than its header.
    """
    rules, current, header_depth, indent, pending = {}, None, None, None, None
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        if raw.lstrip().startswith("#"):
            continue
        line = re.sub(r"\s+#[^\"']*$", "", raw).rstrip()  # a trailing comment without quotes in it
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if current is not None and depth <= header_depth:
            current = None
        header = re.fullmatch(r"\s*(?:rule|checkpoint)(?:\s+(\w+))?\s*:", line)
        if current is None:
            if header:
                current = rules.setdefault(header.group(1) or f"<anonymous rule, line {number}>", {})
                header_depth, indent, pending = depth, None, None
            continue
        if indent is None:
            indent = depth
        directive = re.match(r"(\w+)\s*:(.*)$", line.strip())
        if depth == indent and directive:
            name, value = directive.group(1), directive.group(2).strip()
            current[name] = value or None
            pending = name if not value else None
        elif pending is not None and depth > indent:
            current[pending] = line.strip().rstrip(",")
            pending = None
    named = {}
    for name, directives in rules.items():
        if directives.get("name"):  # e.g. f"figure_{figure}", for messages only
            name = re.sub(r"^f?[\"']|[\"']$", "", directives["name"])
        named[name] = directives
    return named


def literal(value: str) -> str:
    return ast.literal_eval(value.rstrip(","))


def conda_envs(path: Path, value: str) -> list[Path]:
    """The env files a rule's ``conda:`` value may name: a string, or a variable that chooses among
    strings (e.g. ``TRAIN_CONDA_ENV``, assigned in a rule file: the CPU or the CUDA build of torch)."""
    if not re.fullmatch(r"[A-Za-z_]\w*,?", value):
        return [(path.parent / literal(value)).resolve()]
    name = value.rstrip(",")
    for source in rule_files():
        for line in source.read_text().splitlines():
            assignment = re.fullmatch(rf"{name}\s*=\s*(.+)", line)
            if assignment:  # a one-line expression, e.g. `"../envs/a.yaml" if GPU else "../envs/b.yaml"`
                strings = [c.value for c in ast.walk(ast.parse(assignment.group(1))) if isinstance(c, ast.Constant)]
                envs = [(source.parent / s).resolve() for s in strings if isinstance(s, str) and s.endswith(".yaml")]
                assert envs, f"{source.relative_to(ROOT)}: {line!r} names no .yaml env file"
                return envs
    raise AssertionError(f"{path.relative_to(ROOT)}: conda: {value} is assigned on one line in no rule file")


def rule_files():
    return [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]


def all_rules():
    """``[(file, rule, directives)]`` over the Snakefile and rules/*.smk."""
    return [(path, name, d) for path in rule_files() for name, d in parse_rules(path).items()]


def env_files():
    return sorted((ROOT / "envs").glob("*.yaml"))


def env_entries(path: Path) -> tuple[list[str], list[str]]:
    """``(conda entries, pip entries)`` of an env file, as written (pip options included)."""
    conda, pip = [], []
    for dep in yaml.safe_load(path.read_text()).get("dependencies", []):
        if isinstance(dep, dict):
            pip += [str(entry).strip() for entry in dep.get("pip", [])]
        else:
            conda.append(str(dep).strip())
    return conda, pip


def conda_package(entry: str) -> tuple[str, str | None, str | None]:
    """``(name, operator, version)`` of a conda dependency such as ``python=3.11`` or ``pip``."""
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(?:(==?|>=|<=|>|<|~=|!=)\s*(\S+))?", entry)
    assert match, f"cannot parse conda dependency {entry!r}"
    name, op, version = match.groups()
    return name.lower(), op, version


def load_env(path: Path) -> dict:
    """``{conda name: version or None}`` plus ``{"pip:<name>": version or None}`` of the pip: section
    (pip options left out; a pip entry that is not ``name==version`` gets None)."""
    conda, pip = env_entries(path)
    packages = {name: version for name, _, version in map(conda_package, conda)}
    for entry in pip:
        if entry.startswith(PIP_OPTIONS):
            continue
        pin = PIP_PIN.fullmatch(entry)
        name = pin.group(1) if pin else re.split(r"[\s\[=<>~!;@]", entry, maxsplit=1)[0]
        packages[f"pip:{normalise(name)}"] = pin.group(2) if pin else None
    return packages


def lock_pins() -> dict:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[normalise(name)] = version.strip()
    return pins


# --------------------------------------------------------------------------- imports


def _is_import_guard(handler_types) -> bool:
    names = set()
    for node in handler_types:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                names.add(sub.id)
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def module_imports(path: Path, package: str | None = None):
    """Absolute names imported anywhere in ``path`` (``from . import x`` resolved).

    Imports inside ``try: ... except ImportError`` are optional, so left out.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    optional = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and _is_import_guard([h.type for h in node.handlers if h.type is not None]):
            for stmt in node.body:
                optional.update(id(n) for n in ast.walk(stmt))
    names = []
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = (package or "").split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            names.append(module)
            # `from pkg import sub` may import a submodule
            names += [f"{module}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


def package_file(module: str) -> Path | None:
    """The source file of a module of this project's package, else None."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts)
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def third_party_imports(script: Path) -> dict:
    """``{top-level module: [where it is imported]}`` of a script and the package modules it reaches."""
    found, seen = {}, set()
    queue = [(script, None, script.relative_to(ROOT).as_posix())]
    while queue:
        path, package, label = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in module_imports(path, package):
            top = name.split(".")[0]
            if top == PACKAGE:
                # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    target = package_file(".".join(parts[:i]))
                    if target is not None:
                        pkg = ".".join(parts[:i]) if target.name == "__init__.py" else ".".join(parts[: i - 1])
                        queue.append((target, pkg, target.relative_to(ROOT).as_posix()))
            elif top in sys.stdlib_module_names or top in PROVIDED_BY_RUNNER:
                continue
            else:
                found.setdefault(top, []).append(label)
    return found


# --------------------------------------------------------------------------- tests


def test_every_rule_that_runs_something_declares_an_existing_conda_env():
    problems, checked = [], 0
    for path, name, directives in all_rules():
        actions = ACTION_DIRECTIVES & set(directives)
        if not actions:
            continue  # a target-only rule such as `all` runs nothing
        checked += 1
        where = f"{path.relative_to(ROOT)}: rule {name}"
        if "run" in actions:
            problems.append(f"{where}: `run:` blocks execute in the Snakemake process, ignoring `conda:`")
        if not directives.get("conda"):
            problems.append(f"{where}: no `conda:` directive")
            continue
        for env in conda_envs(path, directives["conda"]):
            if not env.is_file() or env.parent != ROOT / "envs":
                problems.append(f"{where}: conda env {env} (conda: {directives['conda']}) is not a file in envs/")
        if "script" in directives and not (path.parent / literal(directives["script"])).is_file():
            problems.append(f"{where}: script {directives['script']} not found")
    assert checked >= 6, f"parsed only {checked} rules with an action: is the parser out of date?"
    assert not problems, "\n".join(problems)


def script_rules():
    for path, name, directives in all_rules():
        if directives.get("script"):
            script = (path.parent / literal(directives["script"])).resolve()
            envs = conda_envs(path, directives["conda"]) if directives.get("conda") else [None]
            for env in envs:
                yield pytest.param(name, script, env, id=f"{name}-{env.stem if env else None}")


@pytest.mark.parametrize(("rule", "script", "env"), list(script_rules()))
def test_each_script_import_is_provided_by_its_rules_env(rule, script, env):
    assert env is not None, f"rule {rule} has no conda env"
    assert script.is_file(), f"rule {rule}: script {script} not found"
    provided = {normalise(name.removeprefix("pip:")) for name in load_env(env)}
    missing = {
        module: sorted(set(where))
        for module, where in third_party_imports(script).items()
        if normalise(DIST_NAME.get(module, module)) not in provided
    }
    assert not missing, (
        f"rule {rule} runs {script.relative_to(ROOT)} in {env.relative_to(ROOT)}, which lacks: "
        + "; ".join(f"{DIST_NAME.get(m, m)} (import {m} in {', '.join(w)})" for m, w in sorted(missing.items()))
    )


def test_import_scan_follows_the_package_transitively():
    """The scan itself: train.py reaches torch and e3nn only through e3hier modules."""
    found = third_party_imports(ROOT / "scripts" / "train.py")
    assert {"torch", "e3nn", "numpy", "pandas"} <= set(found)
    assert all(not where.startswith("scripts/") for where in found["e3nn"])


def pin_problems(env: Path, lock: dict) -> list[str]:
    """What keeps ``env`` from being created from exactly the lock's versions, one line per problem:
    a conda package other than python and pip, python not pinned to pyproject's version, a pip
    entry that is not ``name==version``, a package the lock lacks or pins to another version."""
    conda, pip = env_entries(env)
    problems = []
    for entry in conda:
        name, op, version = conda_package(entry)
        if name == "python":
            wanted = re.search(r">=\s*(\d+\.\d+)", (ROOT / "pyproject.toml").read_text()).group(1)
            if op not in ("=", "==") or version != wanted:
                problems.append(f"conda {entry!r}: pin python={wanted} (pyproject's requires-python)")
        elif name not in CONDA_ONLY:
            problems.append(
                f"conda {entry!r}: only python and pip come from conda-forge; "
                f"put {name} under pip: as {name}=={lock.get(normalise(name), '<lock version>')}"
            )
    if not pip:
        problems.append("no pip: section (the env's packages come from PyPI)")
    for entry in pip:
        if entry.startswith(PIP_OPTIONS):
            continue
        pin = PIP_PIN.fullmatch(entry)
        if pin is None:
            problems.append(f"pip {entry!r}: pin exactly, name==version")
            continue
        name, version = normalise(pin.group(1)), pin.group(2)
        if name not in lock:
            problems.append(f"pip {entry!r}: not in requirements.lock (pin it there first)")
        elif lock[name] != version:
            problems.append(f"pip {entry!r}: requirements.lock pins {name}=={lock[name]}")
    return problems


@pytest.mark.parametrize("env", env_files(), ids=lambda p: p.name)
def test_env_pins_agree_with_requirements_lock(env):
    problems = pin_problems(env, lock_pins())
    assert not problems, f"{env.name}:\n  " + "\n  ".join(problems)


def test_pin_check_reports_every_disagreement(tmp_path):
    """The check itself: an env that strays from the lock in each way it can is reported line by line."""
    wanted = re.search(r">=\s*(\d+\.\d+)", (ROOT / "pyproject.toml").read_text()).group(1)
    lock = {"numpy": "2.4.6", "torch": "2.13.0", "pyscf": "2.14.0", "e3nn": "0.6.0", "pandas": "3.1.1"}
    env = tmp_path / "env.yaml"
    good = {
        "channels": ["conda-forge"],
        "dependencies": [
            f"python={wanted}",
            "pip",
            {"pip": ["--extra-index-url https://download.pytorch.org/whl/cu126", "numpy==2.4.6", "torch==2.13.0"]},
        ],
    }
    env.write_text(yaml.safe_dump(good))
    assert pin_problems(env, lock) == []
    bad = {
        "channels": ["conda-forge"],
        "dependencies": [
            "python=3.10",
            "pip",
            "pytorch=2.13.0",
            {"pip": ["numpy==2.4.5", "torch", "pyscf>=2.14.0", "e3nn==0.6.0+cu126", "tqdm==4.70.1", "pandas==3.1.1"]},
        ],
    }
    env.write_text(yaml.safe_dump(bad))
    problems = pin_problems(env, lock)
    expected = [
        "python=3.10",
        "'pytorch=2.13.0': only python and pip",
        "'numpy==2.4.5': requirements.lock pins numpy==2.4.6",
        "'torch': pin exactly",
        "'pyscf>=2.14.0': pin exactly",
        "'e3nn==0.6.0+cu126': pin exactly",
        "'tqdm==4.70.1': not in requirements.lock",
    ]
    assert len(problems) == len(expected), problems
    for problem, needle in zip(problems, expected):
        assert needle in problem, (needle, problem)
    env.write_text(yaml.safe_dump({"dependencies": [f"python={wanted}", "numpy=2.4.6"]}))
    assert any("no pip: section" in p for p in pin_problems(env, lock))


@pytest.mark.parametrize("env", env_files(), ids=lambda p: p.name)
def test_envs_do_not_install_the_project_package(env):
    """An installed copy would shadow the workflow's own e3hier/ (see the next test) with stale code.

    A relative `pip: ["-e ../"]` would not even install it: Snakemake copies env files to
    .snakemake/conda/<hash>.yaml before creating them, so the path points elsewhere.
    """
    entries = []
    for dep in yaml.safe_load(env.read_text()).get("dependencies", []):
        entries += [str(e) for e in dep.get("pip", [])] if isinstance(dep, dict) else [str(dep)]
    offending = [
        e
        for e in entries
        if e.startswith(("-e", "--editable", ".", "/", "file:", "git+"))
        or normalise(re.split(r"[=<>~!\[ ]", e)[0]) == PACKAGE
    ]
    assert not offending, f"{env.name} installs the project or a local path: {offending}"


def test_scripts_import_the_package_from_the_snakefile_directory(tmp_path):
    """The mechanism by which e3hier reaches every env, checked on a throwaway workflow.

    Snakemake inserts the Snakefile's directory into sys.path when it parses the
    Snakefile, and the Python-script preamble appends the parsing process's sys.path to
    the script's (snakemake/script/__init__.py: `sys.path.extend(searchpaths)`). So a
    package next to the Snakefile imports in a rule's script even when the working
    directory is elsewhere and the package is installed nowhere: with --sdm conda too,
    since the preamble is the same whatever interpreter runs the script.
    """
    flow = tmp_path / "flow"
    package = "pkg_" + tmp_path.name.replace("-", "_")
    (flow / package).mkdir(parents=True)
    (flow / package / "__init__.py").write_text("WHERE = __file__\n")
    (flow / "scripts").mkdir()
    (flow / "scripts" / "probe.py").write_text(
        textwrap.dedent(f"""
            import json, sys
            import {package}
            with open(snakemake.output[0], "w") as out:
                json.dump({{"where": {package}.WHERE, "path": sys.path}}, out)
        """)
    )
    (flow / "Snakefile").write_text(
        textwrap.dedent("""
            rule probe:
                output: "probe.json"
                script: "scripts/probe.py"
        """)
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(flow / "Snakefile"), "-d", str(workdir), "--cores", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    probe = json.loads((workdir / "probe.json").read_text())
    assert Path(probe["where"]).resolve() == (flow / package / "__init__.py").resolve()
    assert str(flow) in probe["path"]
    # and in this repository the package sits next to the Snakefile
    assert (ROOT / "Snakefile").is_file() and (ROOT / PACKAGE / "__init__.py").is_file()


# --------------------------------------------------------------------------- generated from the lock


def pinned(env: Path) -> dict[str, str]:
    """``{normalised name: version}`` of an env's ``name==version`` pip entries."""
    return {name.removeprefix("pip:"): v for name, v in load_env(env).items() if name.startswith("pip:")}


def test_env_files_equal_their_generation_from_the_lock():
    problems = env_generator.stale(env_generator.generate())
    assert not problems, "envs/ is not what requirements.lock generates; run `make envs`:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("env", env_files(), ids=lambda p: p.name)
def test_each_env_pins_the_full_closure_of_its_packages(env):
    """Nothing floats: every package that the env's pins require (on Linux, py3.11) is pinned in it too."""
    pins = pinned(env)
    closure = env_generator.closure(sorted(pins), env_generator.read_lock())
    unpinned = {name: sorted(parents) for name, (_, parents) in closure.items() if name not in pins}
    assert not unpinned, f"{env.name} leaves unpinned: " + ", ".join(
        f"{n} (via {', '.join(p)})" for n, p in unpinned.items()
    )


@pytest.mark.parametrize("env", env_files(), ids=lambda p: p.name)
def test_torch_is_the_cpu_build_except_in_the_cuda_env(env):
    _, pip = env_entries(env)
    options = [entry for entry in pip if entry.startswith(PIP_OPTIONS)]
    if "torch" not in pinned(env):
        assert options == [], f"{env.name} has no torch but pip options {options}"
    elif env.stem.endswith("-cuda"):
        assert options == [], f"{env.name} is the CUDA env: PyPI's torch (a CUDA build), no other index: {options}"
    else:
        assert options == [env_generator.CPU_TORCH_INDEX], (
            f"{env.name}: torch's CPU build needs the pip option {env_generator.CPU_TORCH_INDEX!r}, not {options}"
        )
    assert (ROOT / "envs" / "train-cuda.yaml").is_file()


def test_closure_follows_markers_extras_and_the_lock():
    """The generator itself, on made-up metadata: markers for Linux/py3.11, extras, lock versions, errors."""
    requires = {
        "app": ["lib[fast]>=1", "winonly; sys_platform == 'win32'", "old; python_version < '3.10'", "pip"],
        "lib": ["dep", "speedup; extra == 'fast'", "docs; extra == 'docs'"],
        "dep": [],
        "speedup": ["setuptools"],
    }
    lock = {n: (n, "1.0") for n in ("app", "lib", "dep", "speedup", "docs", "winonly", "old")}
    kwargs = {"requires": lambda name: requires[name], "version": lambda name: "1.0"}
    closure = env_generator.closure(["app"], lock, **kwargs)
    assert {name: version for name, (version, _) in closure.items()} == {
        n: "1.0" for n in ("app", "lib", "dep", "speedup")
    }
    assert closure["speedup"][1] == {"lib"} and closure["app"][1] == set()
    with pytest.raises(LookupError, match=r"dep \(required by lib\) is not pinned in requirements.lock"):
        env_generator.closure(["app"], {k: v for k, v in lock.items() if k != "dep"}, **kwargs)
    with pytest.raises(LookupError, match=r"lib 0.9 is installed but requirements.lock pins 1.0: run `make venv`"):
        env_generator.closure(
            ["app"], lock, requires=kwargs["requires"], version=lambda n: "0.9" if n == "lib" else "1.0"
        )
    text = env_generator.render(env_generator.EnvSpec("x", "For tests.", ("app",)), lock, **kwargs)
    assert "      - app==1.0\n" in text and "      - speedup==1.0  # via lib\n" in text
    assert "--extra-index-url" not in text  # no torch, no PyTorch index


def test_stale_names_edited_missing_and_stray_env_files(tmp_path):
    files = {tmp_path / "a.yaml": "a\n", tmp_path / "b.yaml": "b\n"}
    (tmp_path / "a.yaml").write_text("edited\n")
    (tmp_path / "stray.yaml").write_text("x\n")
    assert env_generator.stale(files, tmp_path) == [
        "a.yaml: differs from its generation",
        "b.yaml: missing",
        "stray.yaml: no env of e3hier.workflow.envs.ENVS generates it",
    ]
    assert env_generator.main(["--check"]) == 0  # the committed files are current


@pytest.mark.parametrize(("device", "env"), [("cuda", "train-cuda.yaml"), ("cpu", "train.yaml")])
def test_train_rules_take_the_cuda_env_when_training_runs_on_cuda(tmp_path, device, env):
    """What Snakemake itself resolves: `--containerize` hashes the env of every job of the DAG (and then
    stops where conda is missing, as here: the hashing comes first)."""
    result = snakemake(tmp_path, "--containerize", overrides={"train": {"device": device}}, check=False, timeout=120)
    hashed = set(re.findall(r"Hashing conda environment \S*/envs/([^/\s]+\.yaml)", result.stdout + result.stderr))
    assert {"dft.yaml", "dataset.yaml", "analysis.yaml"} <= hashed, result.stdout[-2000:] + result.stderr[-2000:]
    assert env in hashed and {"train.yaml", "train-cuda.yaml"} - {env} & hashed == set(), hashed
