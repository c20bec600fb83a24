"""The pre-registrations are never edited once written: each dated file's SHA-256 is in the manifest, and a file
that no longer matches it (or a dated file missing from it) fails here."""

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREREG = ROOT / "docs" / "preregistration"


def manifest() -> dict[str, str]:
    out = {}
    for line in (PREREG / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        out[name.lstrip("*")] = digest
    return out


def test_every_dated_preregistration_is_in_the_manifest_and_unchanged():
    listed = manifest()
    dated = sorted(p.name for p in PREREG.glob("20??-??-??_*.md"))
    assert dated and sorted(listed) == dated, f"not in MANIFEST.sha256: {sorted(set(dated) - set(listed))}; " \
                                              f"listed but missing: {sorted(set(listed) - set(dated))}"
    changed = [n for n in dated if hashlib.sha256((PREREG / n).read_bytes()).hexdigest() != listed[n]]
    assert not changed, f"pre-registrations edited after they were written (write an amendment instead): {changed}"
