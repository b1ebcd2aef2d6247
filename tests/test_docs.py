"""The docs agree with the code they describe: the config schema, docs/configuration.md and the links.

- every key of ``e3hier/schemas/config.schema.yaml`` has a ``description``;
- ``docs/configuration.md`` lists exactly the schema's keys (its tables with a ``key`` column), and no
  page names a config key that the schema lacks (a renamed key fails here until the docs follow);
- every relative link of README.md and docs/*.md points to a file that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "e3hier" / "schemas" / "config.schema.yaml"
CONFIG_PAGE = ROOT / "docs" / "configuration.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: How a key of a map with free names (a split) is written in a dotted key path.
SPLIT = "<split>"
SECTIONS = ("structures", "dft", "metric", "model", "train", "analysis")
#: A backticked config key in prose: a section, then dotted names (file names such as ``model.py`` excluded).
KEY_MENTION = re.compile(rf"^({'|'.join(SECTIONS)})(\.(?:[A-Za-z_][A-Za-z0-9_]*|{re.escape(SPLIT)}))+$")
FILE_SUFFIXES = {"py", "pt", "smk", "yaml", "yml", "md", "json", "tsv", "parquet", "png", "pdf", "html", "log"}


def schema_keys(node: dict, prefix: str = "") -> dict[str, dict]:
    """Dotted key path → schema node, for every property at every level (a free-named map's entry as <split>)."""
    keys = {}
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        keys[path] = child
        keys.update(schema_keys(child, f"{path}."))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        path = f"{prefix}{SPLIT}"
        keys[path] = extra
        keys.update(schema_keys(extra, f"{path}."))
    return keys


def without_code_blocks(text: str) -> str:
    """Markdown text without its fenced code blocks."""
    return re.sub(r"^```.*?^```[^\n]*$", "", text, flags=re.S | re.M)


def key_table_rows(text: str) -> list[str]:
    """The first cells of every table whose header's first column is ``key``."""
    cells, in_table = [], False
    for line in text.splitlines():
        if re.match(r"^\|\s*key\s*\|", line):
            in_table = True
            continue
        if in_table and line.startswith("|"):
            first = line.split("|")[1].strip()
            if not set(first) <= set("-: "):  # the separator row
                cells.append(first)
        else:
            in_table = False
    return cells


def key_mentions(text: str) -> set[str]:
    """Backticked config keys named anywhere in a page's prose and tables."""
    tokens = re.findall(r"`([^`\n]+)`", without_code_blocks(text))
    return {t for t in tokens if KEY_MENTION.match(t) and t.rsplit(".", 1)[-1] not in FILE_SUFFIXES}


@pytest.fixture(scope="module")
def keys():
    return schema_keys(yaml.safe_load(SCHEMA.read_text()))


def test_every_schema_key_has_a_description(keys):
    assert len(keys) > 60  # the walk reached every level
    missing = [k for k, node in keys.items() if not str(node.get("description") or "").strip()]
    assert not missing, f"keys without a description in {SCHEMA.relative_to(ROOT)}: {missing}"


def test_configuration_page_documents_exactly_the_schema_keys(keys):
    rows = key_table_rows(CONFIG_PAGE.read_text())
    malformed = [cell for cell in rows if not re.fullmatch(r"`[^`]+`", cell)]
    assert not malformed, f"key-table rows whose first cell is not one `key`: {malformed}"
    documented = [cell.strip("`") for cell in rows]
    duplicates = sorted({k for k in documented if documented.count(k) > 1})
    assert not duplicates, f"keys documented twice in docs/configuration.md: {duplicates}"
    assert not sorted(set(keys) - set(documented)), (
        f"schema keys missing from docs/configuration.md: {sorted(set(keys) - set(documented))}"
    )
    assert not sorted(set(documented) - set(keys)), (
        f"docs/configuration.md documents keys the schema lacks: {sorted(set(documented) - set(keys))}"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_name_only_keys_that_exist(keys, page):
    unknown = sorted(key_mentions(page.read_text()) - set(keys))
    assert not unknown, f"{page.relative_to(ROOT)} names config keys that the schema lacks: {unknown}"


def relative_links(text: str) -> list[str]:
    """Targets of Markdown links and images that are not URLs or in-page anchors."""
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", without_code_blocks(text))
    return [t for t in targets if not re.match(r"^(?:[a-z][a-z0-9+.-]*:|#)", t)]


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a Markdown page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", without_code_blocks(text), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page):
    links = relative_links(page.read_text())
    broken = [t for t in links if not (page.parent / t.split("#", 1)[0]).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"
    for target in links:
        path, _, anchor = target.partition("#")
        if anchor and path.endswith(".md"):
            anchors = heading_anchors((page.parent / path).read_text())
            assert anchor in anchors, f"{page.relative_to(ROOT)}: no heading #{anchor} in {path}"


def test_the_helpers_see_what_they_should():
    """The parsers above find keys, key rows and links in a small page (so an empty match cannot pass)."""
    text = (
        "| key | meaning |\n|---|---|\n| `train.epochs` | epochs |\n\nsee `model.py`, `train.lr`, "
        "`results/x.parquet`\n```yaml\n`dft.not_a_key`\n```\n[a](docs/plan.md) [b](https://x.org) [c](#top)\n"
        "![f](docs/figures/f.png)\n"
    )
    assert key_table_rows(text) == ["`train.epochs`"]
    assert key_mentions(text) == {"train.epochs", "train.lr"}
    assert relative_links(text) == ["docs/plan.md", "docs/figures/f.png"]
    assert heading_anchors("# On a cluster\n## Cost of the tiers (measured on our 2-core machine)\n") == {
        "on-a-cluster",
        "cost-of-the-tiers-measured-on-our-2-core-machine",
    }
